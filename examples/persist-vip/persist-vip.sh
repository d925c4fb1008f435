#!/bin/bash
# persist-vip.sh (irisvip): put an IRIS mirror's overlay VIP on the device that carries this
# instance's primary ENI, labelled <dev>:1, and keep it there across reboots and network
# reconfiguration, the way the OS expects it:
#   networkd        a drop-in for the .network file that manages the device (Amazon Linux 2023:
#                   /etc/systemd/network/70-<dev>.network.d/60-irisvip.conf)
#   netplan         /etc/netplan/60-irisvip.yaml, merged by id with the file that defines the
#                   device (cloud-init's on Ubuntu)
#   networkmanager  +ipv4.addresses on the device's connection, and a dispatcher script that
#                   gives the address its label (NetworkManager has no address labels)
# An address added by hand alone may vanish when the network service reconfigures the link.
# The device is the one whose MAC is the primary ENI's, read from IMDSv2; no name is assumed.
# Running it again writes the same files and changes nothing (user data, a re-run, a reboot).
#
# usage: persist-vip.sh --vip A.B.C.D [--flavour auto|networkd|netplan|networkmanager]
#          [--dev DEV | --mac MAC] [--root DIR] [--apply all|address|none]
#          [--network-file NAME.network] [--netplan-id ID] [--nm-connection NAME]
#   --root   write the files under DIR instead of / (and read DIR/sys/class/net for the MAC)
#   --apply  all: files, reload the network service, address now; address: files and the
#            address now, no service touched; none: files only, print what `all` would run
# IMDS: $AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254 (token required).
set -euo pipefail

die() { echo "persist-vip: $*" >&2; exit 2; }

vip="" flavour=auto dev="" mac="" root=/ apply=all network_file="" netplan_id="" nm_conn=""
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "$1 needs a value"
    case "$1" in
        --vip) vip=$2 ;; --flavour) flavour=$2 ;; --dev) dev=$2 ;; --mac) mac=$2 ;;
        --root) root=$2 ;; --apply) apply=$2 ;; --network-file) network_file=$2 ;;
        --netplan-id) netplan_id=$2 ;; --nm-connection) nm_conn=$2 ;;
        *) die "unknown option $1 (see the usage at the top of this script)" ;;
    esac
    shift 2
done

vip=${vip%/32}
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
[[ $vip =~ ^$octet\.$octet\.$octet\.$octet$ ]] || die "--vip must be an IPv4 address (a.b.c.d or a.b.c.d/32), got '$vip'"
case $apply in all|address|none) ;; *) die "--apply must be all, address or none" ;; esac
root=${root%/}

# The address, labelled <dev>:1, exactly once: added if missing, re-added with the label if
# present without it (NetworkManager adds it unlabelled). Also written into the dispatcher.
# shellcheck disable=SC2016 # the text of a function, expanded where it runs
label_fn='label_vip() {
    if [ -n "$(ip -4 -o addr show dev "$1" label "$1:1" to "$2/32")" ]; then return 0; fi
    if [ -n "$(ip -4 -o addr show dev "$1" to "$2/32")" ]; then ip addr del "$2/32" dev "$1"; fi
    ip addr add "$2/32" dev "$1" label "$1:1"
}'
eval "$label_fn"

run() {
    if [ "$apply" = none ]; then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        printf 'run:'; printf ' %q' "$@"; printf '\n'
        "$@"
    fi
}

# Write a file only if its content differs; the temporary file sits in the target directory so
# that it gets that directory's SELinux context when renamed into place.
put() {
    local path=$root$1 mode=$2 tmp
    mkdir -p "$(dirname "$path")"
    tmp=$(mktemp "$(dirname "$path")/.irisvip.XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path" && [ "$(stat -c %a "$path")" = "${mode#0}" ]; then
        rm -f "$tmp"; echo "unchanged: $path"
    else
        mv -f "$tmp" "$path"; echo "wrote: $path"
    fi
}

if [ -z "$dev" ]; then
    if [ -z "$mac" ]; then
        imds=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
        imds=${imds%/}
        token=$(curl -sS -f --max-time 2 --retry 3 --retry-connrefused -X PUT \
            -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$imds/latest/api/token") ||
            die "no IMDSv2 token from $imds (pass --dev or --mac where there is no instance metadata)"
        mac=$(curl -sS -f --max-time 2 --retry 3 --retry-connrefused \
            -H "X-aws-ec2-metadata-token: $token" "$imds/latest/meta-data/mac") ||
            die "IMDS at $imds did not answer the MAC"
    fi
    mac=$(printf '%s' "$mac" | tr 'A-F' 'a-f')
    found=() physical=()
    for d in "$root"/sys/class/net/*; do
        [ "$(tr 'A-F' 'a-f' <"$d/address" 2>/dev/null)" = "$mac" ] || continue
        found+=("${d##*/}")
        [ -e "$d/device" ] && physical+=("${d##*/}")
    done
    # A bridge or VLAN on top of the device shares its MAC: prefer the physical device.
    [ ${#found[@]} -gt 1 ] && found=("${physical[@]}")
    [ ${#found[@]} -eq 1 ] || die "expected one device with MAC $mac under $root/sys/class/net, found ${#found[@]} (${found[*]:-none}); pass --dev"
    dev=${found[0]}
fi
[[ $dev =~ ^[A-Za-z0-9_.-]{1,13}$ ]] || die "device name '$dev' cannot carry the label $dev:1 (at most 15 characters)"
label=$dev:1
echo "device: $dev${mac:+ (mac $mac)}, address: $vip/32 label $label"

live() { [ "$root" = "" ] && [ "$apply" = all ]; }
if [ "$flavour" = auto ]; then
    if compgen -G "$root/etc/netplan/*.yaml" >/dev/null; then flavour=netplan
    elif [ "$root" = "" ] && command -v nmcli >/dev/null && [ "$(nmcli -t -f RUNNING general 2>/dev/null)" = running ]; then flavour=networkmanager
    elif [ -d "$root/run/systemd/netif" ] || { [ "$root" != "" ] && [ -d "$root/etc/systemd/network" ]; }; then flavour=networkd
    else die "cannot tell which service manages $dev; pass --flavour networkd, netplan or networkmanager"
    fi
fi
echo "flavour: $flavour"

case $flavour in
networkd)
    if [ -z "$network_file" ] && live && command -v networkctl >/dev/null; then
        network_file=$(networkctl status "$dev" --no-pager 2>/dev/null | sed -n 's|^ *Network File: .*/||p')
    fi
    # amazon-ec2-net-utils names the file of each ENI's device 70-<dev>.network.
    network_file=${network_file:-70-$dev.network}
    [[ $network_file =~ ^[A-Za-z0-9_.@-]+\.network$ ]] || die "--network-file must be a file name ending in .network"
    put "/etc/systemd/network/$network_file.d/60-irisvip.conf" 0644 <<EOF
# Written by persist-vip.sh (irisvip): the mirror's overlay VIP, labelled for irisvip.
[Address]
Address=$vip/32
Label=$label
EOF
    [ "$apply" = address ] || run networkctl reload
    ;;
netplan)
    netplan_id=${netplan_id:-$dev}
    # A second definition of the device under another id would give networkd two .network
    # files for it: refuse unless a file already defines this id (cloud-init's does).
    defined=""
    for f in "$root"/{lib,etc,run}/netplan/*.yaml; do
        [ -f "$f" ] && [ "${f##*/}" != 60-irisvip.yaml ] || continue
        grep -qE "^[[:space:]]+\"?$netplan_id\"?:[[:space:]]*$" "$f" && defined=$f
    done
    [ -n "$defined" ] || die "no netplan file defines '$netplan_id' under $root/{lib,etc,run}/netplan; pass --netplan-id with the id that defines $dev (netplan get ethernets)"
    put /etc/netplan/60-irisvip.yaml 0600 <<EOF
# Written by persist-vip.sh (irisvip): the mirror's overlay VIP on $dev, labelled $label.
# Netplan merges this with the file that defines the id $netplan_id.
network:
  version: 2
  ethernets:
    $netplan_id:
      addresses:
        - "$vip/32":
            label: "$label"
EOF
    [ "$apply" = address ] || run netplan apply
    ;;
networkmanager)
    if [ -z "$nm_conn" ]; then
        { [ "$root" = "" ] && command -v nmcli >/dev/null; } || die "--nm-connection is needed when nmcli is not at hand"
        nm_conn=$(nmcli -g GENERAL.CONNECTION device show "$dev")
        [ -n "$nm_conn" ] || die "NetworkManager has no connection on $dev; pass --nm-connection"
    fi
    put /etc/NetworkManager/dispatcher.d/60-irisvip 0755 <<EOF
#!/bin/sh
# Written by persist-vip.sh (irisvip): NetworkManager has no address labels, so give the VIP
# its label $label whenever NetworkManager (re)configures $dev.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ "\$1" = "$dev" ] || exit 0
case "\$2" in up|reapply|dhcp4-change) ;; *) exit 0 ;; esac
$label_fn
label_vip "$dev" "$vip"
EOF
    if [ "$apply" != address ]; then
        addrs=""
        [ "$apply" = none ] || addrs=$(nmcli -g ipv4.addresses connection show "$nm_conn")
        if [[ ",${addrs// /}," != *",$vip/32,"* ]]; then
            run nmcli connection modify "$nm_conn" +ipv4.addresses "$vip/32"
        fi
        run nmcli device reapply "$dev"
    fi
    ;;
*) die "unknown flavour '$flavour' (networkd, netplan or networkmanager)" ;;
esac

if [ "$apply" = none ]; then
    echo "would put $vip/32 on $dev labelled $label"
else
    label_vip "$dev" "$vip"
    [ -n "$(ip -4 -o addr show dev "$dev" label "$label" to "$vip/32")" ] || die "$vip/32 is not on $label after applying"
    echo "address: $vip/32 on $label"
fi
