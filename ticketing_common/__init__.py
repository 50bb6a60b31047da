"""Infrastructure both services share: database, migrations, errors, auth, logging, docs.

It never imports a service; the services never import each other.
"""
