"""The fraud model's side: simulator, training set, training, evaluation, registry."""
