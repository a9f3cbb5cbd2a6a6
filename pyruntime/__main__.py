from pyruntime.cli import main

main()
