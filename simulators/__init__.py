"""Stand-ins for everything that is not ours: cloud, office, lock hardware, USB, network."""
