"""The segmentation head, the STEGO losses and local training on cached features."""
