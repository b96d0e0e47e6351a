#!/usr/bin/env bash
# `make deb [STATIC=1]`: the Debian package, built with dpkg-deb from a staged tree:
#   /usr/sbin/xvtep, the systemd unit, /etc/xvtep/xvtep.toml (a conffile), man pages
#   (xvtep(8), one per subcommand, xvtep.toml(5)), bash/zsh/fish completions, copyright and
#   changelog. Depends is read off the binary by dpkg-shlibdeps, not guessed. Then lintian.
# Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(scripts/release.sh | tail -n 1)
version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "xvtep"))')
debversion="$version-1"
arch=$(dpkg --print-architecture)
out=target/deb
root="$out/root"
rm -rf "$root"
mkdir -p "$root/DEBIAN"

install -D -m 0755 "$bin" "$root/usr/sbin/xvtep"
install -D -m 0644 packaging/xvtep.service "$root/lib/systemd/system/xvtep.service"
install -D -m 0644 packaging/xvtep.toml "$root/etc/xvtep/xvtep.toml"

man="$out/man"
rm -rf "$man"
"$bin" manpages "$man" >/dev/null
for page in "$man"/*; do
    section=${page##*.}
    install -D -m 0644 "$page" "$root/usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$root/usr/share/man/man$section/$(basename "$page")"
done

install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"
"$bin" completions bash >"$root/usr/share/bash-completion/completions/xvtep"
"$bin" completions zsh >"$root/usr/share/zsh/vendor-completions/_xvtep"
"$bin" completions fish >"$root/usr/share/fish/vendor_completions.d/xvtep.fish"

doc="$root/usr/share/doc/xvtep"
install -d "$doc"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: xvtep
Source: https://github.com/xvtep/xvtep

Files: *
Copyright: 2026 The xvtep developers
License: Apache-2.0

License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$out/changelog.Debian" <<EOF
xvtep ($debversion) unstable; urgency=medium

  * Package built from commit $("$bin" -V | sed -n 's/.*commit \([^)]*\).*/\1/p').

 -- The xvtep developers <xvtep@example.org>  $date
EOF
gzip -9nc "$out/changelog.Debian" >"$doc/changelog.Debian.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.Debian.gz"

# Depends from the binary's own dynamic dependencies (none for STATIC=1).
shlibs="$out/shlibs"
rm -rf "$shlibs"
mkdir -p "$shlibs/debian"
printf 'Source: xvtep\n\nPackage: xvtep\nArchitecture: any\n' >"$shlibs/debian/control"
depends=$(cd "$shlibs" && dpkg-shlibdeps -O -e"$OLDPWD/$root/usr/sbin/xvtep" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')

echo /etc/xvtep/xvtep.toml >"$root/DEBIAN/conffiles"
# The unit is installed but neither enabled nor started: the example config names interfaces
# that a given host may not have. `systemctl enable --now xvtep` once the config is written.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop xvtep.service >/dev/null || true
fi
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
{
    echo "Package: xvtep"
    echo "Version: $debversion"
    echo "Architecture: $arch"
    echo "Maintainer: The xvtep developers <xvtep@example.org>"
    echo "Installed-Size: $size"
    [ -n "$depends" ] && echo "Depends: $depends"
    echo "Section: net"
    echo "Priority: optional"
    echo "Homepage: https://github.com/xvtep/xvtep"
    echo "Description: userspace VXLAN tunnel endpoint (software VTEP)"
    echo " xvtep does what Linux does with one VLAN-aware bridge and one external vxlan"
    echo " device with vlan_tunnel, in userspace over AF_XDP: VLAN-aware bridging, FDB"
    echo " learning keyed by MAC and VNI, VID to VNI translation, encapsulation and"
    echo " decapsulation, flooding by head-end replication or multicast, ARP"
    echo " suppression, miss events and hairpin ports. It follows kernel bridges over"
    echo " netlink, so an EVPN control plane such as FRR drives it unmodified."
} >"$root/DEBIAN/control"

(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | sort | xargs md5sum) >"$root/DEBIAN/md5sums"

deb="$out/xvtep_${debversion}_${arch}.deb"
rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "deb: $deb (Depends: ${depends:-none})" >&2
if command -v lintian >/dev/null; then
    # Tags that remain are explained in the README ("Install").
    lintian --tag-display-limit 0 "$deb" >&2 || true
fi
echo "$deb"
