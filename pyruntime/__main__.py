from pyruntime.fastpath import main

main()
