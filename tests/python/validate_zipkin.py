"""Validates Zipkin v2 JSON bodies (each a ListOfSpans) against the `definitions` of
Zipkin's OpenAPI (Swagger 2.0) file, with a real JSON-schema validator, and prints the
problems found as JSON: {"errors": [{"file": ..., "path": ..., "message": ...}]}.

Swagger 2.0 schemas are JSON Schema draft 4 (plus keywords a validator ignores), so the
file's definitions are used as they are; `format: ipv4/ipv6` are checked too.

usage: validate_zipkin.py --schema zipkin2-api.yaml BODY.json [BODY.json ...]
"""

import argparse
import json
import sys

import jsonschema
import yaml


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", required=True)
    ap.add_argument("bodies", nargs="+")
    a = ap.parse_args()
    with open(a.schema, encoding="utf-8") as f:
        api = yaml.safe_load(f)
    schema = {"$ref": "#/definitions/ListOfSpans", "definitions": api["definitions"]}
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = []
    spans = 0
    for path in a.bodies:
        with open(path, encoding="utf-8") as f:
            body = json.load(f)
        spans += len(body) if isinstance(body, list) else 0
        for e in validator.iter_errors(body):
            errors.append(
                {
                    "file": path,
                    "path": "/".join(str(p) for p in e.absolute_path),
                    "message": e.message,
                }
            )
    json.dump({"spans": spans, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
