from aecli.cli import main

main()
