"""The original API's stack: Flask-Restless 0.17 serving our tables read-only, objects flat.

Runs under Python 3.8 with the era's pins (see ``tests/compat/conftest.py``), never imported by
the suite itself. Usage: ``python original.py DATABASE_FILE PORT MODEL_JSON`` where MODEL_JSON
(written by the suite from our own mappers) names, per table, its columns, primary key and
relations with their join conditions, so that ``relation__field`` means the same thing on both
sides. Tables are reflected with SQLAlchemy's automap, as the task of comparing asks.
"""

import json
import sys

import flask
import flask_restless
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import and_  # noqa: F401  (join conditions are evaluated as strings)
from sqlalchemy.ext.automap import automap_base
from sqlalchemy.orm import relationship


def build(database: str, model: dict) -> flask.Flask:
    app = flask.Flask("original")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + database
    app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
    db = SQLAlchemy(app)
    Base = automap_base()
    classes = {}
    for table, spec in model.items():
        attributes = {"__tablename__": table}
        for name, rel in spec["relations"].items():
            attributes[name] = relationship(
                rel["target"],
                primaryjoin=rel["primaryjoin"],
                secondary=rel["secondary"],
                secondaryjoin=rel["secondaryjoin"],
                uselist=rel["uselist"],
                viewonly=True,
            )
        classes[table] = type(table, (Base,), attributes)

    def hidden(base, local, referred, constraint):  # automap's own names never clash with ours
        return "_auto_" + referred.__name__ + "_" + local.__name__

    with app.app_context():
        Base.prepare(
            db.engine,
            reflect=True,
            name_for_scalar_relationship=hidden,
            name_for_collection_relationship=lambda *names: hidden(*names) + "_all",
        )
    manager = flask_restless.APIManager(app, session=db.session)
    for table, spec in model.items():
        manager.create_api(
            classes[table],
            methods=["GET"],
            url_prefix="/v1",
            collection_name=table,
            include_columns=spec["columns"],
            primary_key=spec["primary_key"],
            results_per_page=10,
            max_results_per_page=1000,
        )
    return app


if __name__ == "__main__":
    database, port, model_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(model_file) as f:
        model = json.load(f)
    build(database, model).run(host="127.0.0.1", port=port, threaded=False)
