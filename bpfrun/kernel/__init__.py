"""The only window on the machine: tracefs formats and features, ELF symbols, probe resolution
and the `probes` listing. Everything else reads the host through the `Kernel` interface here,
so a fake kernel pins what a test sees."""
