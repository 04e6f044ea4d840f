from protege.cli.main import main

main()
