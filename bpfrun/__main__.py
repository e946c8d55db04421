from bpfrun.cli import main

main()
