"""What serves learners and students around the model: the conformance kit for a layer variant
(conformance.py), attention pictures (pictures.py), and the tutorials' helpers (tutorial.py)."""
