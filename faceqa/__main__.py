from faceqa.cli import main

main()
