from reprolab.cli import main

main()
