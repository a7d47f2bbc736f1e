from recast.cli import main

main()
