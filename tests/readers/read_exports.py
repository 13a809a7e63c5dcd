"""Reads memtrace's exports with readers that share no code with memtrace.

    read_exports.py pprof PROFILE.pb.gz   -> JSON: the sample types and each sample's stack
    read_exports.py speedscope FILE.json  -> JSON: the file validated against speedscope's
                                             published schema, each sample's stack and weight

pprof is decoded by Google's protobuf package from the real profile.proto (compiled here with
grpcio-tools' protoc), so a field number memtrace gets wrong shows up as a wrong or missing
value. Run by tests/tests/export_readers.rs in a venv it makes under target/.
"""

import gzip
import importlib
import json
import os
import sys
import tempfile

VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vendor")


def profile_module():
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="memtrace-pprof-")
    proto_dir = os.path.join(VENDOR, "pprof")
    code = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}",
                        os.path.join(proto_dir, "profile.proto")])
    if code != 0:
        raise SystemExit(f"protoc failed: {code}")
    sys.path.insert(0, out)
    return importlib.import_module("profile_pb2")


def read_pprof(path):
    pb = profile_module()
    with open(path, "rb") as f:
        data = gzip.decompress(f.read())
    p = pb.Profile()
    p.ParseFromString(data)
    s = p.string_table
    assert s[0] == "", "string_table[0] must be empty"
    functions = {f.id: f for f in p.function}
    locations = {loc.id: loc for loc in p.location}
    samples = []
    for sample in p.sample:
        stack = []
        for lid in sample.location_id:
            loc = locations[lid]
            for line in loc.line:
                fn = functions[line.function_id]
                stack.append([s[fn.name], s[fn.filename], line.line])
        samples.append({"stack": stack, "values": list(sample.value),
                        "labels": [[s[l.key], s[l.str]] for l in sample.label]})
    return {
        "sample_types": [[s[t.type], s[t.unit]] for t in p.sample_type],
        "period_type": [s[p.period_type.type], s[p.period_type.unit]],
        "samples": samples,
        "mappings": len(p.mapping),
        "comments": [s[c] for c in p.comment],
    }


def read_speedscope(path):
    import jsonschema

    with open(os.path.join(VENDOR, "speedscope", "file-format-schema.json")) as f:
        schema = json.load(f)
    with open(path) as f:
        doc = json.load(f)
    jsonschema.validate(doc, schema)
    frames = doc["shared"]["frames"]
    profiles = []
    for prof in doc["profiles"]:
        assert prof["type"] == "sampled", prof["type"]
        stacks = [
            {"stack": [[frames[i]["name"], frames[i].get("file"), frames[i].get("line")]
                       for i in sample],
             "weight": weight}
            for sample, weight in zip(prof["samples"], prof["weights"])
        ]
        profiles.append({"name": prof["name"], "unit": prof["unit"],
                         "endValue": prof["endValue"], "samples": stacks})
    return {"profiles": profiles}


def main():
    kind, path = sys.argv[1], sys.argv[2]
    result = read_pprof(path) if kind == "pprof" else read_speedscope(path)
    json.dump(result, sys.stdout)


main()
