from armonik_deploy.cli import app

app()
