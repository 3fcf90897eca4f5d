"""A small English–French lexicon and word lists for the generated instruction suite.

Written by hand for minitune. Each entry gives every form the sentence grammar needs, so no
inflection rule is guessed: nouns with their plural and gender, adjectives with four French forms
and their place (before or after the noun), verbs in the third person singular and plural of the
present tense. `ENTRIES` counts them all (the translation tasks use every one).

The word lists at the end (names, places) come in two sizes. The evaluation splits and the
shipped `train.jsonl` draw from the narrow lists (`NARROW`); fresh training data
(`tasks.draw_training_examples`) draws from `WIDE`, a superset with many more names, places and
words, so that a model cannot do well by memorising the few values of the evaluation files: it
has to copy them from the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Noun:
    en: str
    en_plural: str
    fr: str
    fr_plural: str
    gender: str  # "m" or "f"


@dataclass(frozen=True)
class Adjective:
    en: str
    fr_m: str
    fr_f: str
    fr_m_plural: str
    fr_f_plural: str
    before_noun: bool  # French: "un petit chat" (before) vs "un chat noir" (after)


@dataclass(frozen=True)
class Verb:
    en_singular: str  # "sees"
    en_plural: str  # "see"
    fr_singular: str  # "voit"
    fr_plural: str  # "voient"


# en; en plural (blank: +s); fr; fr plural (blank: +s); gender
_NOUNS = """
cat;;chat;;m
dog;;chien;;m
horse;;cheval;chevaux;m
bird;;oiseau;oiseaux;m
fish;fish;poisson;;m
mouse;mice;souris;souris;f
cow;;vache;;f
sheep;sheep;mouton;;m
rabbit;;lapin;;m
duck;;canard;;m
wolf;wolves;loup;;m
bear;;ours;ours;m
lion;;lion;;m
fox;foxes;renard;;m
frog;;grenouille;;f
bee;;abeille;;f
snake;;serpent;;m
pig;;cochon;;m
goat;;chèvre;;f
chicken;;poulet;;m
child;children;enfant;;m
boy;;garçon;;m
girl;;fille;;f
man;men;homme;;m
woman;women;femme;;f
friend;;ami;;m
teacher;;professeur;;m
doctor;;médecin;;m
farmer;;fermier;;m
baker;;boulanger;;m
king;;roi;;m
queen;;reine;;f
student;;étudiant;;m
neighbour;;voisin;;m
brother;;frère;;m
sister;;sœur;;f
father;;père;;m
mother;;mère;;f
baby;babies;bébé;;m
singer;;chanteur;;m
house;;maison;;f
school;;école;;f
church;;église;;f
garden;;jardin;;m
kitchen;;cuisine;;f
room;;chambre;;f
door;;porte;;f
window;;fenêtre;;f
table;;table;;f
chair;;chaise;;f
bed;;lit;;m
wall;;mur;;m
street;;rue;;f
city;cities;ville;;f
village;;village;;m
bridge;;pont;;m
river;;rivière;;f
sea;;mer;;f
lake;;lac;;m
mountain;;montagne;;f
forest;;forêt;;f
tree;;arbre;;m
flower;;fleur;;f
field;;champ;;m
island;;île;;f
road;;route;;f
car;;voiture;;f
train;;train;;m
boat;;bateau;bateaux;m
plane;;avion;;m
bicycle;;vélo;;m
book;;livre;;m
letter;;lettre;;f
newspaper;;journal;journaux;m
pen;;stylo;;m
picture;;image;;f
song;;chanson;;f
word;;mot;;m
story;stories;histoire;;f
question;;question;;f
answer;;réponse;;f
apple;;pomme;;f
bread;;pain;;m
cheese;;fromage;;m
cake;;gâteau;gâteaux;m
egg;;œuf;;m
milk;;lait;;m
water;;eau;eaux;f
soup;;soupe;;f
orange;;orange;;f
lemon;;citron;;m
carrot;;carotte;;f
potato;potatoes;pomme de terre;pommes de terre;f
meal;;repas;repas;m
coffee;;café;;m
tea;;thé;;m
glass;glasses;verre;;m
cup;;tasse;;f
plate;;assiette;;f
knife;knives;couteau;couteaux;m
box;boxes;boîte;;f
bag;;sac;;m
key;;clé;;f
ball;;balle;;f
toy;;jouet;;m
hat;;chapeau;chapeaux;m
shirt;;chemise;;f
shoe;;chaussure;;f
dress;dresses;robe;;f
coat;;manteau;manteaux;m
clock;;horloge;;f
phone;;téléphone;;m
computer;;ordinateur;;m
lamp;;lampe;;f
map;;carte;;f
ticket;;billet;;m
gift;;cadeau;cadeaux;m
game;;jeu;jeux;m
sun;;soleil;;m
moon;;lune;;f
star;;étoile;;f
cloud;;nuage;;m
rain;;pluie;;f
snow;;neige;;f
wind;;vent;;m
day;;jour;;m
night;;nuit;;f
week;;semaine;;f
year;;année;;f
morning;;matin;;m
evening;;soir;;m
money;;argent;;m
work;;travail;travaux;m
idea;;idée;;f
dream;;rêve;;m
music;;musique;;f
film;;film;;m
market;;marché;;m
shop;;magasin;;m
office;;bureau;bureaux;m
hospital;;hôpital;hôpitaux;m
station;;gare;;f
library;libraries;bibliothèque;;f
museum;;musée;;m
park;;parc;;m
tower;;tour;;f
castle;;château;châteaux;m
farm;;ferme;;f
hill;;colline;;f
stone;;pierre;;f
leaf;leaves;feuille;;f
grass;;herbe;;f
sky;skies;ciel;cieux;m
ship;;navire;;m
truck;;camion;;m
bus;buses;bus;bus;m
nurse;;infirmière;;f
cook;;cuisinier;;m
pilot;;pilote;;m
painter;;peintre;;m
uncle;;oncle;;m
aunt;;tante;;f
cousin;;cousin;;m
owl;;hibou;hiboux;m
ant;;fourmi;;f
butterfly;butterflies;papillon;;m
spoon;;cuillère;;f
fork;;fourchette;;f
bottle;;bouteille;;f
candle;;bougie;;f
blanket;;couverture;;f
pillow;;oreiller;;m
mirror;;miroir;;m
beach;beaches;plage;;f
"""

# en; fr m; fr f; fr m pl (blank: +s); fr f pl (blank: +s); before (b) or after (a) the noun
_ADJECTIVES = """
small;petit;petite;;;b
big;grand;grande;;;b
good;bon;bonne;;;b
bad;mauvais;mauvaise;mauvais;;b
young;jeune;jeune;;;b
pretty;joli;jolie;;;b
long;long;longue;;;b
red;rouge;rouge;;;a
blue;bleu;bleue;;;a
green;vert;verte;;;a
black;noir;noire;;;a
white;blanc;blanche;;;a
yellow;jaune;jaune;;;a
grey;gris;grise;gris;;a
brown;marron;marron;marron;marron;a
pink;rose;rose;;;a
happy;heureux;heureuse;heureux;;a
sad;triste;triste;;;a
tired;fatigué;fatiguée;;;a
hungry;affamé;affamée;;;a
quick;rapide;rapide;;;a
slow;lent;lente;;;a
strong;fort;forte;;;a
weak;faible;faible;;;a
hot;chaud;chaude;;;a
cold;froid;froide;;;a
clean;propre;propre;;;a
dirty;sale;sale;;;a
quiet;calme;calme;;;a
noisy;bruyant;bruyante;;;a
rich;riche;riche;;;a
poor;pauvre;pauvre;;;a
kind;gentil;gentille;;;a
clever;intelligent;intelligente;;;a
funny;drôle;drôle;;;a
strange;étrange;étrange;;;a
empty;vide;vide;;;a
full;plein;pleine;;;a
heavy;lourd;lourde;;;a
light;léger;légère;;;a
expensive;cher;chère;;;a
cheap;bon marché;bon marché;bon marché;bon marché;a
modern;moderne;moderne;;;a
famous;célèbre;célèbre;;;a
dangerous;dangereux;dangereuse;dangereux;;a
round;rond;ronde;;;a
square;carré;carrée;;;a
soft;doux;douce;doux;;a
hard;dur;dure;;;a
sweet;sucré;sucrée;;;a
"""

# en 3sg; en 3pl; fr 3sg; fr 3pl
_VERBS = """
sees;see;voit;voient
eats;eat;mange;mangent
likes;like;aime;aiment
wants;want;veut;veulent
takes;take;prend;prennent
finds;find;trouve;trouvent
watches;watch;regarde;regardent
reads;read;lit;lisent
writes;write;écrit;écrivent
buys;buy;achète;achètent
sells;sell;vend;vendent
opens;open;ouvre;ouvrent
closes;close;ferme;ferment
carries;carry;porte;portent
draws;draw;dessine;dessinent
paints;paint;peint;peignent
cleans;clean;nettoie;nettoient
follows;follow;suit;suivent
helps;help;aide;aident
waits for;wait for;attend;attendent
looks for;look for;cherche;cherchent
brings;bring;apporte;apportent
loses;lose;perd;perdent
knows;know;connaît;connaissent
calls;call;appelle;appellent
visits;visit;visite;visitent
hears;hear;entend;entendent
drinks;drink;boit;boivent
cooks;cook;cuisine;cuisinent
washes;wash;lave;lavent
builds;build;construit;construisent
breaks;break;casse;cassent
repairs;repair;répare;réparent
pushes;push;pousse;poussent
pulls;pull;tire;tirent
throws;throw;lance;lancent
catches;catch;attrape;attrapent
holds;hold;tient;tiennent
keeps;keep;garde;gardent
shows;show;montre;montrent
gives;give;donne;donnent
receives;receive;reçoit;reçoivent
prefers;prefer;préfère;préfèrent
hates;hate;déteste;détestent
chooses;choose;choisit;choisissent
fills;fill;remplit;remplissent
forgets;forget;oublie;oublient
leaves;leave;quitte;quittent
meets;meet;rencontre;rencontrent
ignores;ignore;ignore;ignorent
"""

# adverbs and small words: en; fr
_ADVERBS = """
today;aujourd'hui
tomorrow;demain
yesterday;hier
often;souvent
always;toujours
sometimes;parfois
never;jamais
now;maintenant
here;ici
there;là
quickly;rapidement
slowly;lentement
again;encore
together;ensemble
early;tôt
late;tard
"""

NUMBERS_EN = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
NUMBERS_FR = (
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze "
    "seize dix-sept dix-huit dix-neuf vingt"
).split()
TENS_EN = {
    20: "twenty",
    30: "thirty",
    40: "forty",
    50: "fifty",
    60: "sixty",
    70: "seventy",
    80: "eighty",
    90: "ninety",
}


def _rows(table: str) -> list[list[str]]:
    return [line.split(";") for line in table.strip().splitlines()]


NOUNS = [
    Noun(en, en_pl or en + "s", fr, fr_pl or fr + "s", g)
    for en, en_pl, fr, fr_pl, g in _rows(_NOUNS)
]
ADJECTIVES = [
    Adjective(en, m, f, mp or m + "s", fp or f + "s", pos == "b")
    for en, m, f, mp, fp, pos in _rows(_ADJECTIVES)
]
VERBS = [Verb(*row) for row in _rows(_VERBS)]
ADVERBS = [(en, fr) for en, fr in _rows(_ADVERBS)]
# number words 0..20 in both languages
NUMBERS = list(zip(NUMBERS_EN, NUMBERS_FR, strict=True))

ENTRIES = len(NOUNS) + len(ADJECTIVES) + len(VERBS) + len(ADVERBS) + len(NUMBERS)

# Word lists for the other generated tasks (names, places, topics); not translated.
FIRST_NAMES = (
    "Alice Bruno Chloe David Emma Farid Grace Hugo Ines Jonas Karim Lena Marco Nadia Oscar Paula "
    "Quentin Rosa Samir Tara Ugo Vera Walid Xenia Yann Zoe Amara Boris Clara Dmitri Elena Felix "
    "Gemma Hassan Ivy Jules Kofi Lucia Mateo Nora"
).split()
LAST_NAMES = (
    "Martin Bernard Dubois Laurent Moreau Garcia Rossi Novak Smith Jones Tanaka Kim Silva Costa "
    "Meyer Schmidt Haddad Okafor Petrov Larsen"
).split()
CITIES = (
    "Paris Lyon Marseille London Berlin Madrid Rome Lisbon Dublin Vienna Prague Oslo Tokyo Cairo "
    "Lagos Lima Montreal Boston Sydney Seoul"
).split()
COUNTRIES = (
    "France Spain Italy Germany Portugal Ireland Austria Norway Japan Egypt Nigeria Peru Canada "
    "Brazil Kenya Chile India Mexico Sweden Greece"
).split()
MONTHS = (
    "January February March April May June July August September October November December"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
COLORS = [adj.en for adj in ADJECTIVES[7:16]]  # red .. pink


# ---- wide pools: more values for fresh training data (never used by the evaluation splits) ----

_MORE_FIRST_NAMES = (
    "Aaron Abigail Adrian Agnes Ahmed Aisha Albert Alma Anton Astrid Beatrice Benjamin Bianca "
    "Carlos Carmen Cecile Daniel Daria Diego Dora Edgar Eliza Emil Esther Fatima Filip Freya "
    "Gabriel Greta Hana Henrik Ibrahim Ida Igor Irene Isaac Jamal Jana Jasper Julia Kai Kamala "
    "Kenji Klara Lars Laila Leon Liam Lina Luca Magnus Maya Mei Mina Moritz Nina Noah Olga Omar "
    "Pablo Petra Priya Rafael Rania Ravi Rita Ruben Sara Simon Sofia Stefan Sven Tomas Ursula "
    "Victor Wanda Yara Yusuf Zara Zeno"
).split()
_MORE_LAST_NAMES = (
    "Andersen Becker Campbell Chen Clarke Diaz Dupont Evans Fischer Fontaine Garnier Gomez "
    "Gonzalez Hansen Hoffmann Jensen Johnson Kowalski Lambert Lee Lopez Mendes Mercier Muller "
    "Nguyen Nielsen Olsen Patel Perez Quinn Ramos Reyes Richter Roux Santos Sato Schneider "
    "Suzuki Taylor Thomas Torres Vogel Wagner Walker Weber Williams Wilson Wong Yamamoto "
    "Zimmermann"
).split()
_MORE_CITIES = (
    "Amsterdam Athens Barcelona Bergen Bologna Bordeaux Brussels Budapest Chicago Copenhagen "
    "Delhi Dakar Denver Edinburgh Florence Geneva Glasgow Hamburg Helsinki Istanbul Jakarta "
    "Kyoto Lille Manchester Melbourne Milan Mumbai Munich Nairobi Nantes Naples Osaka Porto "
    "Quebec Riga Santiago Seville Shanghai Stockholm Tallinn Toronto Toulouse Turin Valencia "
    "Vancouver Venice Warsaw Zurich Accra Bogota Havana Hanoi Kigali Lahore Manila Perth Rabat "
    "Tunis"
).split()
_MORE_COUNTRIES = (
    "Argentina Australia Belgium Bolivia Bulgaria Cameroon China Colombia Croatia Cuba Denmark "
    "Ecuador Estonia Ethiopia Finland Ghana Hungary Iceland Indonesia Israel Jamaica Latvia "
    "Lebanon Lithuania Malaysia Mali Morocco Nepal Netherlands Pakistan Poland Romania Senegal "
    "Serbia Singapore Slovakia Slovenia Switzerland Thailand Tunisia Uganda Ukraine Uruguay "
    "Vietnam Zambia"
).split()
# single lower-case English words for the string tasks (reverse, upper case, acronym, code)
_MORE_WORDS = (
    "anchor arrow autumn badge basket beacon blossom breeze brick bucket button cabin camera "
    "canal canyon carpet cereal circle cliff comet compass copper cotton crystal curtain desert "
    "diamond dragon drum eagle engine feather fence galaxy garlic giant glove guitar hammer "
    "harbour helmet honey jacket jungle kettle kitten ladder lantern magnet marble meadow melon "
    "needle nest ocean onion orbit oven paddle palace parrot pebble pencil pepper piano pirate "
    "planet pocket puzzle radio ribbon rocket saddle salad sandal scarf shadow shell signal "
    "silver sketch spider spring stamp storm sugar summer sunset sword tiger timber tomato "
    "tractor tunnel turtle valley velvet violin wagon walnut whale whistle winter wizard yogurt "
    "zebra bright brave calm crisp eager fancy gentle golden humble jolly lucky mellow narrow "
    "nimble proud rapid rusty shiny silent steady tiny vivid wild windy wooden"
).split()


@dataclass(frozen=True)
class Pools:
    """The value lists a generator draws from. `NARROW` is what the evaluation splits use;
    `WIDE` adds more of each (a superset, same order first), for fresh training data."""

    first_names: list[str]
    last_names: list[str]
    cities: list[str]
    countries: list[str]
    words: list[str]  # single lower-case English words


def _extend(base: list[str], more: list[str]) -> list[str]:
    """base, then the new values of `more` (no value twice)."""
    seen = set(base)
    return base + [w for w in dict.fromkeys(more) if w not in seen]


_WORDS = [n.en for n in NOUNS if " " not in n.en] + [a.en for a in ADJECTIVES if " " not in a.en]
NARROW = Pools(FIRST_NAMES, LAST_NAMES, CITIES, COUNTRIES, _WORDS)
WIDE = Pools(
    first_names=_extend(FIRST_NAMES, _MORE_FIRST_NAMES),
    last_names=_extend(LAST_NAMES, _MORE_LAST_NAMES),
    cities=_extend(CITIES, _MORE_CITIES),
    countries=_extend(COUNTRIES, _MORE_COUNTRIES),
    words=_extend(_WORDS, _MORE_WORDS),
)


def pools(wide: bool = False) -> Pools:
    """`WIDE` for fresh training data, `NARROW` (the shipped suite's lists) otherwise."""
    return WIDE if wide else NARROW
