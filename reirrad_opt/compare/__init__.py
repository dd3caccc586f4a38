"""IMRT versus particle comparative planning on identical anatomy, prior course and protocol."""
