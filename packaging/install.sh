#!/usr/bin/env bash
# Install (or remove) BST Studio's desktop integration: the launcher entry, the icons and the file
# associations "open a folder / a CSV with BST Studio" (freedesktop: menus of GNOME, KDE, Xfce, ...).
#
#   install.sh [--system | --data-dir DIR] [--exec PATH] [--uninstall]
#
#   (default)       for the current user: ${XDG_DATA_HOME:-~/.local/share}
#   --system        for every user: /usr/share (run as root)
#   --data-dir DIR  into DIR (e.g. /usr/local/share, or a staging folder)
#   --exec PATH     the bst-studio program the entry starts. Default: the bst-studio beside this
#                   script (the desktop bundle, where build.sh puts this script), else the one on
#                   $PATH (pipx/pip install)
#   --uninstall     remove exactly the files an install writes
#
# Files (same names in every mode):
#   <data>/applications/bst-studio.desktop            Exec/TryExec point at the program, MimeType
#                                                     inode/directory;text/csv; (not made the default:
#                                                     "Open With" lists it; `xdg-mime default
#                                                     bst-studio.desktop text/csv` makes it the default)
#   <data>/icons/hicolor/{48x48,128x128,256x256}/apps/bst-studio.png, scalable/apps/bst-studio.svg
#   <data>/mime/packages/bst-studio.xml
# then, where installed, update-mime-database, update-desktop-database and gtk-update-icon-cache.
# Needs only bash and coreutils (no Python: it runs beside the bundle on a machine without one).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
data="${XDG_DATA_HOME:-$HOME/.local/share}"
exec_path=""
uninstall=0
while (($#)); do
    case $1 in
        --system) data=/usr/share ;;
        --data-dir) [ $# -ge 2 ] || die "--data-dir needs a folder"; data=$2; shift ;;
        --exec) [ $# -ge 2 ] || die "--exec needs the path of bst-studio"; exec_path=$2; shift ;;
        --uninstall) uninstall=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done

# The integration files: in share/ beside this script (bundle) or beside it (packaging/ of a clone).
src=""
for dir in "$here/share" "$here"; do
    [ -f "$dir/bst-studio.desktop" ] && { src=$dir; break; }
done
[ -n "$src" ] || die "bst-studio.desktop not found in $here/share or $here"

sizes=(48 128 256)
targets=("applications/bst-studio.desktop" "mime/packages/bst-studio.xml"
         "icons/hicolor/scalable/apps/bst-studio.svg")
for size in "${sizes[@]}"; do targets+=("icons/hicolor/${size}x${size}/apps/bst-studio.png"); done

refresh() {
    if command -v update-mime-database >/dev/null && [ -d "$data/mime/packages" ]; then
        update-mime-database "$data/mime"
    fi
    if command -v update-desktop-database >/dev/null && [ -d "$data/applications" ]; then
        update-desktop-database -q "$data/applications"
    fi
    if [ -d "$data/icons/hicolor" ]; then
        if command -v gtk-update-icon-cache >/dev/null && [ -f "$data/icons/hicolor/index.theme" ]; then
            gtk-update-icon-cache -q -t -f "$data/icons/hicolor"
        else
            touch "$data/icons/hicolor"   # a changed folder time makes icon themes rescan
        fi
    fi
}

probe=$data
while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done     # the first part of the path that exists
[ -w "$probe" ] || die "cannot write to $data (as $(id -un)): for --system run it as root (sudo), or install for yourself without --system."

if ((uninstall)); then
    for target in "${targets[@]}"; do rm -f "$data/$target"; done
    refresh
    echo "removed BST Studio's desktop entry, icons and file associations from $data"
    exit 0
fi

# The program the entry starts, as an absolute path (a menu does not search the user's PATH).
if [ -z "$exec_path" ]; then
    if [ -x "$here/bst-studio" ] && [ ! -d "$here/bst-studio" ]; then
        exec_path="$here/bst-studio"
    else
        exec_path=$(command -v bst-studio || true)
    fi
    [ -n "$exec_path" ] || die "bst-studio was found neither beside this script nor on PATH. Install BST Studio first (pipx install \"bst-studio[gui]\"), or pass --exec /path/to/bst-studio."
fi
case $exec_path in /*) ;; *) exec_path="$(cd "$(dirname "$exec_path")" && pwd)/$(basename "$exec_path")" ;; esac
[ -x "$exec_path" ] && [ ! -d "$exec_path" ] || die "$exec_path is not an executable program; pass --exec /path/to/bst-studio."

# Desktop Entry quoting: the Exec argument in double quotes with \ " ` $ escaped, % doubled, then
# every \ escaped once more as in any string value (freedesktop Desktop Entry spec, "Exec key").
quoted=${exec_path//\\/\\\\}
quoted=${quoted//\"/\\\"}
quoted=${quoted//\`/\\\`}
quoted=${quoted//\$/\\\$}
quoted=${quoted//%/%%}
quoted="\"${quoted//\\/\\\\}\""
try_exec=${exec_path//\\/\\\\}

mkdir -p "$data/applications" "$data/mime/packages"
entry=$(mktemp "$data/applications/.bst-studio.desktop.XXXXXX")
trap 'rm -f "$entry"' EXIT
while IFS= read -r line || [ -n "$line" ]; do
    case $line in
        Exec=*) args=${line#Exec=}
                case $args in *" "*) args=" ${args#* }" ;; *) args="" ;; esac
                printf 'Exec=%s%s\n' "$quoted" "$args" ;;
        TryExec=*) printf 'TryExec=%s\n' "$try_exec" ;;
        *) printf '%s\n' "$line" ;;
    esac
done <"$src/bst-studio.desktop" >"$entry"
chmod 644 "$entry"
mv -f "$entry" "$data/applications/bst-studio.desktop"
trap - EXIT

install -D -m 644 "$src/bst-studio.xml" "$data/mime/packages/bst-studio.xml"
install -D -m 644 "$src/bst-studio.svg" "$data/icons/hicolor/scalable/apps/bst-studio.svg"
for size in "${sizes[@]}"; do
    install -D -m 644 "$src/bst-studio-$size.png" "$data/icons/hicolor/${size}x${size}/apps/bst-studio.png"
done
refresh
echo "installed BST Studio's desktop entry (starts $exec_path), icons and file associations (folders, CSV) into $data"
