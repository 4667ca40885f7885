"""Writes the gateway configs embedded in Kubernetes ConfigMaps to files.

usage: configmap_configs.py OUT_DIR MANIFEST...
Prints one written path per line. Every `data` key ending in .yaml of every ConfigMap
is written as OUT_DIR/<configmap>-<key>.
"""
import pathlib
import sys

import yaml


def main():
    out = pathlib.Path(sys.argv[1])
    for manifest in sys.argv[2:]:
        with open(manifest, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "ConfigMap":
                    continue
                for key, text in (doc.get("data") or {}).items():
                    if key.endswith(".yaml"):
                        path = out / f"{doc['metadata']['name']}-{key}"
                        path.write_text(text, encoding="utf-8")
                        print(path)


if __name__ == "__main__":
    main()
