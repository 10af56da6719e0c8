#!/bin/bash
# Scenario 5 (issue 6, --user): a rootless user container under the user's own systemd.
#   A user with lingering (user@UID.service runs without a login); as that user,
#   `berth --user install --now --set PORT=8484 httpd`: units in ~/.config/systemd/user,
#   the user manager told over the session bus, httpd.socket started; the first request
#   starts the container (lighttpd in a user namespace, uid 0 inside = the user outside)
#   in the user's own cgroup; `berth --user list`; `berth --user uninstall` leaves the
#   user's trees as before and never touches the system's.
SCENARIO=5
. /mnt/host/lib.sh
IMAGE=oci-archive:$IMAGES/httpd.tar:1
PORT=8484
U=berthuser
UID_=1500

# as_user CMD...: CMD as the user, with the environment of its user manager.
as_user() {
  runuser -u "$U" -- env -i PATH="$PATH" HOME="/home/$U" USER="$U" LOGNAME="$U" \
    XDG_RUNTIME_DIR="/run/user/$UID_" DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$UID_/bus" "$@"
}

system_trees() {
  find /etc/systemd/system /etc/tmpfiles.d /var/lib/berth 2> /dev/null | sort
}

user_manager() {
  useradd -m -u "$UID_" -s /bin/bash "$U" || return
  loginctl enable-linger "$U" || return
  wait_active "user@$UID_.service" 20 || return
  local i
  for ((i = 0; i < 50; i++)); do
    [ -S "/run/user/$UID_/bus" ] && [ -S "/run/user/$UID_/systemd/private" ] && break
    sleep 0.2
  done
  as_user systemctl --user is-system-running --wait || true
  as_user systemctl --user show -p Version --value
}

install_user() {
  as_user berth --user install --now --name httpd --set PORT=$PORT "$IMAGE" || return
  ls -l "/home/$U/.config/systemd/user" "/home/$U/.config/systemd/user/sockets.target.wants" || return
  grep -q "^ListenStream=127.0.0.1:$PORT\$" "/home/$U/.config/systemd/user/httpd.socket" || return
  grep '^ExecStart=' "/home/$U/.config/systemd/user/httpd.service" | shows '--user'
}

socket_listening() {
  as_user systemctl --user is-active httpd.socket || return
  [ "$(as_user systemctl --user is-active httpd.service)" != active ] || { echo "httpd.service already running"; return 1; }
}

get_page() { curl -fsS -m 5 "http://127.0.0.1:$1/" | shows "berth httpd $2"; }

# The first request starts the container: lighttpd runs as the user on the host, in
# the user manager's httpd.service cgroup, uid 0 in its own user namespace.
rootless_request() {
  get_page $PORT 1 || return
  local i pid cg
  for ((i = 0; i < 50; i++)); do
    pid=$(pgrep -x lighttpd) && break
    sleep 0.1
  done
  [ -n "${pid:-}" ] || { echo "no lighttpd"; return 1; }
  echo "lighttpd pid $pid: $(ps -o user=,uid= -p "$pid")"
  [ "$(ps -o uid= -p "$pid" | tr -d ' ')" = "$UID_" ] || return
  cg=$(cgroup_of "$pid")
  echo "cgroup: $cg"
  case $cg in "/user.slice/user-$UID_.slice/user@$UID_.service/"*httpd.service*) ;; *) return 1 ;; esac
  echo "uid_map: $(tr -s ' ' < "/proc/$pid/uid_map")"
  [ "$(awk '{print $1, $2}' "/proc/$pid/uid_map")" = "0 $UID_" ] || return
  [ "$(readlink "/proc/$pid/ns/user")" != "$(readlink /proc/1/ns/user)" ]
}

user_list() {
  as_user berth --user list --json | tee /tmp/ulist.json || return
  grep -q '"name": *"httpd"' /tmp/ulist.json
}

user_journal() {
  as_user journalctl --user -u httpd.service --no-pager -n 20 || true
  journalctl --no-pager -n 200 _UID="$UID_" | grep -q lighttpd
}

uninstall_user() {
  as_user berth --user uninstall httpd || return
  [ "$(as_user systemctl --user is-active httpd.socket)" != active ] || return
  ! curl -fsS -m 2 "http://127.0.0.1:$PORT/" > /dev/null 2>&1 || { echo "port $PORT still answers"; return 1; }
  find "/home/$U/.config" "/home/$U/.local/share/berth/containers" | sort > /tmp/user-after
  diff /tmp/user-before /tmp/user-after
}

if ! berth --help | grep -q -- --user; then
  record missing "berth --user" 0 "berth --help shows no --user"
else
  system_trees > /tmp/system-before
  check "user $U with lingering: user@$UID_.service and its bus" user_manager || finish
  as_user mkdir -p "/home/$U/.config" "/home/$U/.local/share/berth/containers"
  find "/home/$U/.config" "/home/$U/.local/share/berth/containers" | sort > /tmp/user-before
  check "berth --user install --now --set PORT=$PORT httpd: units in ~/.config/systemd/user" install_user
  check "httpd.socket active in the user manager (service not started yet)" socket_listening
  check "first request starts lighttpd rootless: the user's uid, its cgroup, uid 0 inside" rootless_request
  check "berth --user list --json" user_list
  check "the container's log in the user's journal" user_journal
  check "berth --user uninstall: the user's trees as before, the port closed" uninstall_user
  system_trees > /tmp/system-after
  check "the system's units, tmpfiles and /var/lib/berth untouched" diff /tmp/system-before /tmp/system-after
  check "systemctl --failed is empty" no_failed_units
fi
finish
