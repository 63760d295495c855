"""The Flink runner's version skew, pinned in ONE place. scripts/flink.sh reads these lines (sed on
`NAME = "value"`), flow_beam/runners.py imports them; keep the one-assignment-per-line form.

Beam's Python SDK (setup.py: apache-beam 2.77) talks to a Java Flink runner of an older Beam through the portable
job API: the newest Beam Flink runner on Maven Central is beam-runners-flink-1.19:2.70.0 (no job-server artifact,
no 1.20/2.x runner), and the job service it needs is compiled from the 2.65.0 sources jar."""
BEAM_PYTHON = "2.77.0"  # the apache-beam Python SDK the pipelines are built with (setup.py)
BEAM_JAVA = "2.70.0"  # org.apache.beam:beam-runners-flink-1.19 (the Java runner in the job server)
JOB_SERVICE_SOURCES = "2.65.0"  # org.apache.beam:beam-runners-java-job-service:sources, compiled in
FLINK = "1.19.3"  # the cluster (PyPI apache-flink + apache-flink-libraries) and the runner's Flink modules
FLINK_MINOR = "1.19"  # --flink_version for Beam; a remote cluster must run Flink 1.19.x
