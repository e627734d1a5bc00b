#!/bin/sh
# Sets up the trial SFTP server from its environment and secrets, then runs sshd in the foreground.
#   SFTP_GROUPS     external groups' FTP directories (the LIMS `ftp_dir`), space-separated; each gets
#                   /srv/sftp/deliveries/<dir> and a read-only account of the same name
#   /run/secrets/sftp_host_key          the server's private host key (ed25519); its public half is the
#                                       Connection's pinned `host_key`
#   /run/secrets/sftp_delivery_key_pub  the delivery account's public key
#   /etc/ssh/group-keys/<dir>.pub       optional: a group account's public key (else it cannot log in)
set -eu

install -m 0600 /run/secrets/sftp_host_key /etc/ssh/ssh_host_ed25519_key
mkdir -p /run/sshd /etc/ssh/authorized_keys
chmod 0755 /etc/ssh/authorized_keys

getent passwd seqshare-delivery >/dev/null ||
  useradd --uid 2000 --user-group --no-create-home --home-dir / --shell /usr/sbin/nologin seqshare-delivery
getent group sftp-groups >/dev/null || groupadd --gid 2999 sftp-groups
install -m 0644 /run/secrets/sftp_delivery_key_pub /etc/ssh/authorized_keys/seqshare-delivery

install -d -o root -g root -m 0755 /srv/sftp
install -d -o root -g root -m 0711 /srv/sftp/deliveries

for dir in ${SFTP_GROUPS:-}; do
  case "$dir" in
    *[!a-z0-9_-]*|-*) echo "sftp: '$dir' is not a plain directory name; skipped" >&2; continue ;;
  esac
  getent group "sftp-$dir" >/dev/null || groupadd "sftp-$dir"
  getent passwd "$dir" >/dev/null ||
    useradd --no-user-group --gid sftp-groups --groups "sftp-$dir" --no-create-home --home-dir / \
      --shell /usr/sbin/nologin "$dir"
  # setgid: folders the deliveries create inside keep the group, so the group can read them.
  install -d -o seqshare-delivery -g "sftp-$dir" -m 2750 "/srv/sftp/deliveries/$dir"
  if [ -f "/etc/ssh/group-keys/$dir.pub" ]; then
    install -m 0644 "/etc/ssh/group-keys/$dir.pub" "/etc/ssh/authorized_keys/$dir"
  fi
done

/usr/sbin/sshd -t
exec /usr/sbin/sshd -D -e
