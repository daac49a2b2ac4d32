"""edgerun: learned planning, reconstruction and perception models as real-time ZeroMQ nodes."""

__version__ = "0.1.0"
