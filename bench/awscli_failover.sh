#!/bin/sh
# The AWS CLI contender: what a shell failover script does. IMDSv2 (curl) for this instance's
# primary ENI and region, then one `aws ec2 replace-route` per route table, in sequence.
#
#   AWS=/path/to/aws awscli_failover.sh VIP/32 rtb-1 [rtb-2 ...]
set -eu
AWS="${AWS:-aws}"
VIP="$1"
shift
MD=http://169.254.169.254/latest
TOKEN=$(curl -sf -X PUT "$MD/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
md() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "$MD/meta-data/$1"; }
MAC=$(md mac)
ENI=$(md "network/interfaces/macs/$MAC/interface-id")
REGION=$(md placement/region)
for rtb in "$@"; do
    "$AWS" ec2 replace-route --region "$REGION" --route-table-id "$rtb" \
        --destination-cidr-block "$VIP" --network-interface-id "$ENI"
done
