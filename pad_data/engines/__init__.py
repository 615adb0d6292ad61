"""How stages run: the pipeline of steps, locally or on Ray."""
