#!/usr/bin/env python3
"""A Rivet client in Python: validates and creates a pipeline, launches a job, and follows
its log, through the generated gRPC stubs of proto/rivet/v1.

    pip install -r examples/clients/python/requirements.txt
    python3 examples/clients/python/rivet_client.py --server 127.0.0.1:7420 examples/hello.lua
    python3 examples/clients/python/rivet_client.py --server https://ci.example:7420 \
        --ca-file ca.pem examples/hello.lua

The stubs are generated on the fly from the repository's .proto files (grpc_tools), so the
example never goes stale. RIVET_TOKEN, when set, is sent as a bearer token. An https://
server is verified against the system roots, or against --ca-file (RIVET_CA_FILE) for a
private CA.
"""

import argparse
import importlib
import os
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[3]


def load_stubs():
    """Generates the Python modules of rivet.v1 into a temporary directory and imports them."""
    out = tempfile.mkdtemp(prefix="rivet-stubs-")
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto/rivet/v1").glob("*.proto"))
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    args = ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    if protoc.main(args) != 0:
        sys.exit("failed to generate the gRPC stubs")
    sys.path.insert(0, out)
    names = ["pipeline", "job", "log"]
    return {n: importlib.import_module(f"rivet.v1.{n}_pb2") for n in names} | {
        f"{n}_grpc": importlib.import_module(f"rivet.v1.{n}_pb2_grpc") for n in names
    }


def open_channel(server, ca_file):
    """A channel to `server`: TLS for https://, plain text otherwise (loopback only)."""
    if server.startswith("https://"):
        roots = pathlib.Path(ca_file).read_bytes() if ca_file else None
        return grpc.secure_channel(server.removeprefix("https://"), grpc.ssl_channel_credentials(root_certificates=roots))
    if ca_file:
        sys.exit(f"--ca-file is for https:// servers, not {server}")
    return grpc.insecure_channel(server.removeprefix("http://"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("RIVET_SERVER", "http://127.0.0.1:7420"))
    parser.add_argument("--ca-file", default=os.environ.get("RIVET_CA_FILE"), help="PEM CA certificates for https://")
    parser.add_argument("--input", action="append", default=[], help="k=v, repeatable")
    parser.add_argument("--no-launch", action="store_true", help="only validate and create the pipeline")
    parser.add_argument("file")
    args = parser.parse_args()

    m = load_stubs()
    token = os.environ.get("RIVET_TOKEN")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    channel = open_channel(args.server, args.ca_file)
    pipelines = m["pipeline_grpc"].PipelineServiceStub(channel)
    jobs = m["job_grpc"].JobServiceStub(channel)
    logs = m["log_grpc"].LogServiceStub(channel)

    source = pathlib.Path(args.file).read_text()
    name = pathlib.Path(args.file).name
    check = pipelines.ValidatePipeline(m["pipeline"].ValidatePipelineRequest(source=source, file_name=name), metadata=metadata)
    if not check.valid:
        for d in check.diagnostics:
            print(f"{d.file}:{d.line}: {d.field}: {d.message}", file=sys.stderr)
        return 3
    created = pipelines.CreatePipeline(m["pipeline"].CreatePipelineRequest(source=source, file_name=name), metadata=metadata)
    print(f"created pipeline {created.pipeline.name!r} version {created.pipeline.version}")
    if args.no_launch:
        return 0

    inputs = dict(item.split("=", 1) for item in args.input)
    try:
        job = jobs.LaunchJob(m["job"].LaunchJobRequest(pipeline=created.pipeline.id, inputs=inputs), metadata=metadata).job
    except grpc.RpcError as err:
        print(f"launch refused: {err.code().name}: {err.details()}", file=sys.stderr)
        return 2
    print(f"launched job {job.id}")
    request = m["log"].StreamLogsRequest(job_id=job.id, from_sequence=1, follow=True)
    for batch in logs.StreamLogs(request, metadata=metadata):
        for line in batch.lines:
            print(f"[{line.stage}] {line.text}")
    job = jobs.GetJob(m["job"].GetJobRequest(job_id=job.id), metadata=metadata).job
    state = m["job"].JobState.Name(job.state)
    print(f"job ended: {state}")
    return 0 if state == "JOB_STATE_SUCCEEDED" else 4


if __name__ == "__main__":
    sys.exit(main())
