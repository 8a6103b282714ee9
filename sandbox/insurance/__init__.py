"""The simulated social insurance database (BHXH): REST/JSON with a token login."""
