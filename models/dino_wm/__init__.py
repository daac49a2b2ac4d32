"""DINO-WM: a frozen DINOv2 encoder and the world model that plans in its patch-token latent."""
