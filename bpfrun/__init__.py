"""bpfrun: declarative eBPF investigations compiled from YAML runbooks to BCC programs."""

__version__ = "0.1.0"
