# The failover lab: do clients reach the VIP again after a failover, and how soon? Real packets
# between network namespaces (a client, members A and B in two subnets, a VPC router that follows
# moto's route tables), the library loaded by zfhost in each member; scenario 6 moves a secondary
# private IP between two members of one subnet (mode=private-ip, EC2 through the EC2 model of
# tests/support/faultproxy.py). See lab/README.md.
# Included from the Makefile (uses its PY, deps and build). Needs root: it makes namespaces
# irisvip-lab-<pid>-* and removes them on every exit path; exits 3 where it cannot make them.
#
#   make lab        scenarios 1-6, 5 runs each (~60 s) -> $(LAB_OUT)/lab.json and lab.png,
#                   timelines and the results table on stdout
#   make lab-test   tests/lab: a short lab (scenarios 1, 2, 4, 6, twice) judged from its JSON, plus
#                   an interrupted run that must leave nothing behind (30-40 s; skips without root)
#
# LAB_ARGS adds options (see `lab/lab.py --help`), e.g. LAB_ARGS="--repeat 10 --sync-ms 20".

LAB_OUT ?= $(CURDIR)/target/lab
LAB_ARGS ?=

.PHONY: lab lab-test

lab: deps build
	@mkdir -p $(LAB_OUT)
	$(PY) lab/lab.py --repeat 5 --json $(LAB_OUT)/lab.json --plot $(LAB_OUT)/lab.png $(LAB_ARGS)

lab-test: deps build
	$(PY) -m unittest discover -s tests/lab -v
