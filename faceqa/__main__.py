from faceqa.cli import app

app()
