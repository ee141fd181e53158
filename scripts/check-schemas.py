#!/usr/bin/env python3
"""Checks every schema in schemas/ and its examples with the reference JSON Schema implementation.

The Swift tests check the same examples with the project's own validator and decoders; this makes
sure that validator agrees with the standard. Prints 'N passed, N failed'.
"""
import glob
import json
import os
import sys

import jsonschema

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas")
passed = failed = 0
for path in sorted(glob.glob(os.path.join(root, "*.schema.json"))):
    name = os.path.basename(path)[: -len(".schema.json")]
    schema = json.load(open(path))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for kind in ("valid", "invalid"):
        for example in sorted(glob.glob(os.path.join(root, "examples", name, kind, "*.json"))):
            ok = validator.is_valid(json.load(open(example))) == (kind == "valid")
            passed += ok
            failed += not ok
            if not ok:
                print(f"schema check: {name}/{kind}/{os.path.basename(example)} is judged wrongly", file=sys.stderr)
print(f"schemas: {passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
