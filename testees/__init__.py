"""The implementations the suite runs, one folder each (as bowtie's implementations/): the
program over its real library (que for python, que-go and gue for go, Ruby Que for ruby and
ruby2), its Dockerfile, and a manifest.json that tells the harness its rows: the command, the
dialects it speaks, how to build it and its image. testees/README.md describes the manifest;
conformance/PROTOCOL.md, what a testee answers."""
