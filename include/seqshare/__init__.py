"""seqshare: share sequencing data between research groups and deliver it to external collaborators."""

__version__ = "0.1.0"
