"""Other formats: Hugging Face T5 / Flan-T5 folders mapped onto this model both ways (t5.py), and
downloading a published checkpoint (download.py)."""
