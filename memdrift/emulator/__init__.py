"""Device physics: parameters, models, pulse schemes and the pulse engine."""
