#!/usr/bin/env python3
"""Build the disk images tests/disk_images.rs reads, like real AMIs' volumes.

Usage: build.py CACHE_DIR
       build.py --bench CACHE_DIR   # make bench's 8 GiB fixtures, >= 20,000 files

Every image is built without root by the real tools (mke2fs -d, mkfs.xfs -p,
sgdisk, mkfs.vfat) and written as a sparse file under CACHE_DIR/v<VERSION>/.
An image that is already there is not built again; bump VERSION when what an
image holds changes, so stale caches are not read as new ones.

Standard library only. The tools come from Debian packages that `make
images-tools` installs; when one is missing this script says which and exits
non-zero, so the tests that need the images fail rather than skip.
"""

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

VERSION = 3
MIB = 1024 * 1024
SECTOR = 512
TOOLS = {
    "mke2fs": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "sgdisk": "gdisk",
    "mkfs.vfat": "dosfstools",
}
# GPT partition type codes, as sgdisk spells them.
BIOS_BOOT, EFI, LINUX, SWAP, XBOOTLDR = "ef02", "ef00", "8300", "8200", "ea00"

# The tree every root file system holds: sizes chosen to look like a small
# cloud image (thousands of files, an /etc of a few hundred entries, many
# home directories), small enough to build in seconds.
HOMES = 40
ETC_EXTRA = 260
USR_PACKAGES = 250
FILES_PER_PACKAGE = 16


def main():
    args = sys.argv[1:]
    bench = args[:1] == ["--bench"]
    if bench:
        args = args[1:]
    if len(args) != 1:
        sys.exit("usage: build.py [--bench] CACHE_DIR")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        sys.exit(
            "build.py: missing tools from Debian packages %s; run `make images-tools`"
            % " ".join(missing)
        )
    out = os.path.join(args[0], ("bench-v%d" % BENCH_VERSION) if bench else ("v%d" % VERSION))
    os.makedirs(out, exist_ok=True)
    for name, build in (BENCH_IMAGES if bench else IMAGES).items():
        path = os.path.join(out, name + ".img")
        if os.path.exists(path):
            continue
        with tempfile.TemporaryDirectory(dir=out) as work:
            tmp = os.path.join(work, name + ".img")
            build(tmp, work)
            os.rename(tmp, path)
        print("built", path, file=sys.stderr)
    with open(os.path.join(out, "tree.json"), "w") as f:
        json.dump(tree_facts(BENCH_PACKAGES if bench else USR_PACKAGES), f, indent=1, sort_keys=True)


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---------------------------------------------------------------- the tree


def tree_facts(packages):
    """What the tests expect to find, independent of the layout."""
    return {
        "homes": ["user%02d" % i for i in range(HOMES)],
        "etc_entries_min": ETC_EXTRA,
        "usr_files": packages * FILES_PER_PACKAGE,
    }


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def fake_key(rng, kind):
    body = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(400))
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n-----END OPENSSH PRIVATE KEY-----\n# %s\n" % ("\n".join(lines), kind)


def root_tree(root, os_release, packages=USR_PACKAGES):
    """A merged-/usr Linux root: /bin -> usr/bin, /etc/os-release -> ../usr/lib/os-release.

    packages: directories of FILES_PER_PACKAGE files under /usr/share/doc."""
    rng = random.Random(19)
    passwd = ["root:x:0:0:root:/root:/bin/bash", "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin"]
    shadow = ["root:*:19000:0:99999:7:::", "daemon:*:19000:0:99999:7:::"]
    for i in range(HOMES):
        user = "user%02d" % i
        passwd.append("%s:x:%d:%d::/home/%s:/bin/bash" % (user, 1000 + i, 1000 + i, user))
        shadow.append("%s:!:19000:0:99999:7:::" % user)
        home = os.path.join(root, "home", user)
        write(os.path.join(home, ".bashrc"), "# ~/.bashrc of %s\nalias ll='ls -l'\n" % user)
        write(os.path.join(home, ".profile"), "# ~/.profile\n. ~/.bashrc\n")
        write(os.path.join(home, ".bash_history"), "".join("cmd%d --flag\n" % n for n in range(i % 7)), 0o600)
        write(os.path.join(home, ".ssh", "authorized_keys"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA%s %s@builder\n" % (user, user), 0o600)
        os.chmod(os.path.join(home, ".ssh"), 0o700)
        if i % 5 == 0:
            write(os.path.join(home, ".ssh", "id_ed25519"), fake_key(rng, user), 0o600)
        if i % 3 == 0:
            write(os.path.join(home, ".aws", "credentials"), "[default]\naws_access_key_id = AKIAEXAMPLE%04d\n" % i, 0o600)
        os.chown(home, 1000 + i, 1000 + i)
    write(os.path.join(root, "etc", "passwd"), "\n".join(passwd) + "\n")
    write(os.path.join(root, "etc", "shadow"), "\n".join(shadow) + "\n", 0o640)
    write(os.path.join(root, "etc", "hostname"), "builder\n")
    write(os.path.join(root, "etc", "fstab"), "LABEL=/ / auto defaults 0 0\n")
    for kind in ("rsa", "ecdsa", "ed25519"):
        write(os.path.join(root, "etc", "ssh", "ssh_host_%s_key" % kind), fake_key(rng, kind), 0o600)
        write(os.path.join(root, "etc", "ssh", "ssh_host_%s_key.pub" % kind), "ssh-%s AAAA%s root@builder\n" % (kind, kind))
    write(os.path.join(root, "etc", "ssh", "sshd_config"), "PermitRootLogin prohibit-password\nPasswordAuthentication no\n")
    for i in range(ETC_EXTRA):
        write(os.path.join(root, "etc", "conf%03d.conf" % i), "setting_%d = %d\n" % (i, rng.randrange(1 << 30)))
    write(os.path.join(root, "usr", "lib", "os-release"), os_release)
    os.symlink("../usr/lib/os-release", os.path.join(root, "etc", "os-release"))
    # A 3-hop chain and a loop, for the symlink tests.
    os.symlink("/etc/os-release", os.path.join(root, "etc", "system-release"))
    os.symlink("loop-b", os.path.join(root, "etc", "loop-a"))
    os.symlink("loop-a", os.path.join(root, "etc", "loop-b"))
    for p in range(packages):
        for f in range(FILES_PER_PACKAGE):
            write(os.path.join(root, "usr", "share", "doc", "pkg%03d" % p, "file%02d" % f), "pkg %d file %d\n" % (p, f) * (1 + (p * f) % 40))
    for b in ("bash", "sh", "ls", "cat", "sshd"):
        write(os.path.join(root, "usr", "bin", b), b"\x7fELF" + bytes(rng.randrange(256) for _ in range(3000)), 0o755)
    os.symlink("usr/bin", os.path.join(root, "bin"))
    os.symlink("usr/lib", os.path.join(root, "lib"))
    write(os.path.join(root, "root", ".bash_history"), "aws configure\nshred -u key.pem\n", 0o600)
    write(os.path.join(root, "root", ".bashrc"), "# root's bashrc\n")
    write(os.path.join(root, "root", ".ssh", "authorized_keys"), "ssh-ed25519 AAAAroot builder@ci\n", 0o600)
    os.chmod(os.path.join(root, "root"), 0o700)
    # A large file: a directory listing shows it, a small-file read refuses it.
    os.makedirs(os.path.join(root, "var", "log"))
    with open(os.path.join(root, "var", "log", "big.log"), "wb") as f:
        f.truncate(64 * MIB)
        f.seek(32 * MIB)
        f.write(b"middle of a sparse log\n")
    os.makedirs(os.path.join(root, "tmp"))
    os.chmod(os.path.join(root, "tmp"), 0o1777)


def boot_tree(root):
    write(os.path.join(root, "vmlinuz-6.1.0-test"), b"MZ" + bytes(8000))
    write(os.path.join(root, "initrd.img-6.1.0-test"), bytes(12000))
    write(os.path.join(root, "grub", "grub.cfg"), "set default=0\nmenuentry 'Linux' { linux /vmlinuz-6.1.0-test root=LABEL=/ }\n")


def data_tree(root):
    for i in range(200):
        write(os.path.join(root, "data", "shard%02d" % (i % 20), "blob%03d.bin" % i), bytes([i % 256]) * (100 + i * 37))
    write(os.path.join(root, "README"), "second volume: application data\n")


def make_tree(work, name, fill):
    root = os.path.join(work, name)
    os.makedirs(root)
    fill(root)
    return root


# ------------------------------------------------------------ file systems


def sparse_file(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def ext_fs(path, size, tree, kind="ext4", label="/", features=None):
    sparse_file(path, size)
    # lazy_itable_init keeps the image sparse; -F because it is a file.
    args = ["mke2fs", "-q", "-F", "-t", kind, "-L", label, "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"]
    if features:
        args += ["-O", features]
    run(*args, "-d", tree, path)


def protofile(tree, path):
    """mkfs.xfs's prototype file describing `tree` (names have no spaces)."""
    lines = ["/stand/diskboot", "0 0"]

    def mode_field(st, kind):
        import stat as S

        return "%s%s%s%03o" % (kind, "u" if st.st_mode & S.S_ISUID else "-", "g" if st.st_mode & S.S_ISGID else "-", st.st_mode & 0o777)

    def walk(d, depth):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            st = os.lstat(p)
            pad = " " * depth
            if os.path.islink(p):
                lines.append("%s%s %s %d %d %s" % (pad, name, mode_field(st, "l"), st.st_uid, st.st_gid, os.readlink(p)))
            elif os.path.isdir(p):
                lines.append("%s%s %s %d %d" % (pad, name, mode_field(st, "d"), st.st_uid, st.st_gid))
                walk(p, depth + 1)
                lines.append(pad + "$")
            else:
                lines.append("%s%s %s %d %d %s" % (pad, name, mode_field(st, "-"), st.st_uid, st.st_gid, p))

    st = os.lstat(tree)
    lines.append(mode_field(st, "d") + " 0 0")
    walk(tree, 1)
    lines.append("$")
    # Names that are not UTF-8 come back from listdir as surrogates and
    # go out as the same bytes.
    with open(path, "w", errors="surrogateescape") as f:
        f.write("\n".join(lines) + "\n")


def xfs_fs(path, size, tree, label="/", v4=False):
    sparse_file(path, size)
    proto = path + ".proto"
    protofile(tree, proto)
    args = ["mkfs.xfs", "-q", "-f", "-L", label, "-p", proto]
    if v4:
        # CentOS 7 era: no CRCs (v4). Deprecated in xfsprogs but still made.
        args += ["-m", "crc=0,finobt=0,rmapbt=0,reflink=0", "-n", "ftype=1"]
    run(*args, path)
    os.unlink(proto)


def fat_fs(path, size):
    sparse_file(path, size)
    run("mkfs.vfat", "-n", "EFI", path)


def swap_area(path, size):
    """A swap signature as mkswap writes it (page size 4096): no tool needed."""
    sparse_file(path, size)
    with open(path, "r+b") as f:
        header = struct.pack("<III", 1, size // 4096 - 1, 0)
        f.seek(1024)
        f.write(header)
        f.seek(4096 - 10)
        f.write(b"SWAPSPACE2")


def blob(path, size, data):
    """Raw bytes at the start of a partition (the BIOS boot's GRUB core)."""
    sparse_file(path, size)
    with open(path, "r+b") as f:
        f.write(data)


# ------------------------------------------------------------------- disks


def copy_into(disk, offset, part):
    """Copy a partition image into the disk at `offset`, keeping holes."""
    with open(part, "rb") as src, open(disk, "r+b") as dst:
        pos = 0
        while True:
            chunk = src.read(MIB)
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                dst.seek(offset + pos)
                dst.write(chunk)
            pos += len(chunk)
    os.unlink(part)


def gpt_disk(path, size, parts, work):
    """parts: (number, start_mib, size_mib or None for the rest, type, name, builder(path, bytes))."""
    sparse_file(path, size)
    args = ["sgdisk", "-Z"]
    for num, start, mib, code, name, _ in parts:
        end = "0" if mib is None else "+%dM" % mib
        args += ["-n", "%d:%dM:%s" % (num, start, end), "-t", "%d:%s" % (num, code), "-c", "%d:%s" % (num, name)]
    run(*(args + [path]))
    out = subprocess.run(["sgdisk", "-p", path], check=True, capture_output=True, text=True).stdout
    bounds = {}
    for line in out.splitlines():
        f = line.split()
        if f and f[0].isdigit():
            bounds[int(f[0])] = (int(f[1]) * SECTOR, (int(f[2]) - int(f[1]) + 1) * SECTOR)
    for num, _, _, _, _, build in parts:
        start, length = bounds[num]
        part = os.path.join(work, "part%d" % num)
        build(part, length)
        copy_into(path, start, part)


def mbr_disk(path, size, parts, work):
    """parts: (start_mib, size_mib, type byte, bootable, builder). A DOS table written by hand."""
    sparse_file(path, size)
    table = b""
    for start, mib, ptype, boot, _ in parts:
        lba, count = start * MIB // SECTOR, mib * MIB // SECTOR
        # CHS fields 0xFEFFFF: "use LBA", as modern fdisk writes past 8 GiB.
        table += struct.pack("<B3sB3sII", 0x80 if boot else 0, b"\xfe\xff\xff", ptype, b"\xfe\xff\xff", lba, count)
    table += bytes(16 * (4 - len(parts)))
    with open(path, "r+b") as f:
        f.seek(440)
        f.write(struct.pack("<I", 0x19191919) + b"\0\0" + table + b"\x55\xaa")
    for i, (start, mib, _, _, build) in enumerate(parts):
        part = os.path.join(work, "part%d" % (i + 1))
        build(part, mib * MIB)
        copy_into(path, start * MIB, part)


OS_AL2023 = 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\n'
OS_UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\n'
OS_DEBIAN = 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
OS_CENTOS = 'NAME="CentOS Linux"\nVERSION_ID="7"\nID="centos"\n'
GRUB_CORE = b"\xeb\x63\x90" + b"GRUB core image" + bytes(100)


def al2023(path, work):
    # Amazon Linux 2023: root XFS on 1, BIOS boot 127 and EFI 128 before it.
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_AL2023))
    gpt_disk(path, 8 * 1024 * MIB, [
        (127, 1, 1, BIOS_BOOT, "BIOS-BOOT", lambda p, n: blob(p, n, GRUB_CORE)),
        (128, 2, 10, EFI, "EFI-SYSTEM", fat_fs),
        (1, 12, None, LINUX, "Linux", lambda p, n: xfs_fs(p, n, tree)),
    ], work)


def ubuntu(path, work):
    # Ubuntu 24.04 cloud image: root ext4 on 1, BIOS boot 14, EFI 15, /boot 16.
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_UBUNTU))
    boot = make_tree(work, "boot", boot_tree)
    gpt_disk(path, 8 * 1024 * MIB, [
        (14, 1, 4, BIOS_BOOT, "", lambda p, n: blob(p, n, GRUB_CORE)),
        (15, 5, 106, EFI, "", fat_fs),
        (16, 111, 913, XBOOTLDR, "", lambda p, n: ext_fs(p, n, boot, label="BOOT")),
        (1, 1024, None, LINUX, "", lambda p, n: ext_fs(p, n, tree, label="cloudimg-rootfs")),
    ], work)


def debian(path, work):
    # An installer-made Debian: EFI 1, /boot ext2 on 2, swap 3, root ext3 on 4.
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_DEBIAN))
    boot = make_tree(work, "boot", boot_tree)
    gpt_disk(path, 2 * 1024 * MIB, [
        (1, 1, 63, EFI, "", fat_fs),
        (2, 64, 192, LINUX, "", lambda p, n: ext_fs(p, n, boot, kind="ext2", label="boot")),
        (3, 256, 256, SWAP, "", swap_area),
        (4, 512, None, LINUX, "", lambda p, n: ext_fs(p, n, tree, kind="ext3")),
    ], work)


def plain_ext4(path, work):
    # No partition table: the file system is the whole volume. Without
    # metadata checksums, as mke2fs made ext4 before 1.43 (Ubuntu 16.04):
    # the fuzz pass's flipped bits then reach the extent and directory
    # parsers instead of stopping at a checksum.
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_UBUNTU))
    ext_fs(path, 1024 * MIB, tree, features="^metadata_csum")


def mbr(path, work):
    # CentOS 7-like: DOS table, /boot ext4 on 1, swap on 2, XFS v4 root on 3.
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_CENTOS))
    boot = make_tree(work, "boot", boot_tree)
    mbr_disk(path, 2 * 1024 * MIB, [
        (1, 255, 0x83, True, lambda p, n: ext_fs(p, n, boot, label="boot")),
        (256, 256, 0x82, False, swap_area),
        (512, 1536, 0x83, False, lambda p, n: xfs_fs(p, n, tree, v4=True)),
    ], work)


def data_volume(path, work):
    # A second EBS volume: GPT, one XFS partition of data, no /etc.
    tree = make_tree(work, "data", data_tree)
    gpt_disk(path, 1024 * MIB, [(1, 1, None, LINUX, "data", lambda p, n: xfs_fs(p, n, tree, label="data"))], work)


def small_tree(root):
    write(os.path.join(root, "etc", "passwd"), "root:x:0:0:root:/root:/bin/bash\n")
    write(os.path.join(root, "etc", "hostname"), "hostile\n")
    write(os.path.join(root, "etc", "sub", "f"), "in sub\n")
    write(os.path.join(root, "home", "a", ".ssh", "authorized_keys"), "ssh-ed25519 AAAA a@b\n", 0o600)
    write(os.path.join(root, "home", "a", ".bashrc"), "# a\n")
    os.symlink("etc/hostname", os.path.join(root, "lnk"))
    # A name that is not UTF-8: Linux names are bytes.
    odd = os.path.join(os.fsencode(root), b"srv", b"\xffodd")
    os.makedirs(odd)
    with open(os.path.join(odd, b"inner"), "wb") as f:
        f.write(b"found\n")


def hostile_ext4(path, work):
    # Made by e2fsprogs' own debugfs, so every checksum is right and only
    # the meaning is hostile: /etc/sub/back is /etc (a directory cycle),
    # /etc/passwd claims 2^60 bytes, /home 2^47 - 1, the symlink 1 MB.
    tree = make_tree(work, "root", small_tree)
    ext_fs(path, 64 * MIB, tree)
    cmds = os.path.join(work, "debugfs.cmds")
    with open(cmds, "w") as f:
        f.write("link /etc /etc/sub/back\n")
        f.write("sif /etc/passwd size 0x1000000000000000\n")
        f.write("sif /home size 0x7fffffffffff\n")
        f.write("sif /lnk size 1000000\n")
    run("debugfs", "-w", "-f", cmds, path)


def xfs_inode(path, fs_path):
    out = subprocess.run(["xfs_db", "-r", "-c", "path " + fs_path, "-c", "inode", path], check=True, capture_output=True, text=True).stdout
    return int(out.split("current inode number is")[1].split()[0])


def hostile_xfs(path, work):
    # The same hostility written by xfsprogs' xfs_db (which recomputes the
    # v5 CRCs): /etc/sub/f is /etc (a cycle), huge sizes on a file and a
    # directory.
    tree = make_tree(work, "root", small_tree)
    xfs_fs(path, 300 * MIB, tree)
    etc = xfs_inode(path, "/etc")
    run(
        "xfs_db", "-x",
        "-c", "path /etc/sub", "-c", "write u3.sfdir3.list[0].inumber.i4 %d" % etc, "-c", "write u3.sfdir3.list[0].filetype 2",
        "-c", "path /etc/passwd", "-c", "write core.size 1152921504606846976",
        "-c", "path /home", "-c", "write core.size 140737488355327",
        path,
    )


# ------------------------------------------------- the content check's images
#
# Issue 20's check: one secret of every kind planted where it looks, with
# PLANTED-SECRET-7f3a and an access key id inside, so the tests can search
# every output for them; and a clean root of the same shape, where each
# check has something to look at that is no finding (comments, empty files,
# locked accounts, `no`). tests/disk_images.rs lists what each must find.

PLANTED = "PLANTED-SECRET-7f3a"
PLANTED_KEY_ID = "AKIAPLANTED000000000"


def _accounts(root, shadow_lines):
    write(os.path.join(root, "etc", "passwd"), "\n".join([
        "root:x:0:0:root:/root:/bin/bash",
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
        "ann:x:1000:1000::/home/ann:/bin/bash",
        "bob:x:1001:1001::/home/bob:/bin/bash",
        "svc:x:998:998::/srv/svc:/sbin/nologin",
        "nopass:x:1002:1002::/home/nopass:/bin/sh",
    ]) + "\n")
    write(os.path.join(root, "etc", "shadow"), "\n".join(shadow_lines) + "\n", 0o640)
    write(os.path.join(root, "etc", "os-release"), OS_UBUNTU)
    write(os.path.join(root, "etc", "hostname"), "builder\n")
    os.makedirs(os.path.join(root, "dev"))
    os.makedirs(os.path.join(root, "tmp"))


def planted_tree(root):
    """Every kind of finding, at the paths tests/disk_images.rs expects."""
    rng = random.Random(20)
    key = fake_key(rng, PLANTED).replace("-----END", PLANTED + "\n-----END")
    _accounts(root, [
        "root:*:19000:0:99999:7:::",
        "daemon:*:19000:0:99999:7:::",
        "ann:$6$%s$Q9vVx0cK1p2r3s4t5u6v7w8x9y0z:19000:0:99999:7:::" % PLANTED,
        "bob:!:19000:0:99999:7:::",
        "svc:!!:19000::::::",
        "nopass::19000:0:99999:7:::",
    ])
    # authorized-keys: root's, ann's authorized_keys2; bob's is only comments.
    write(os.path.join(root, "root", ".ssh", "authorized_keys"), "ssh-ed25519 AAAAC3%s root@builder\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "ann", ".ssh", "authorized_keys2"), "# ci\nssh-rsa AAAAB3%s ann@ci\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".ssh", "authorized_keys"), "# no keys here\n\n", 0o600)
    # Over the check's 1 MiB read bound: a finding unread (it can't be cleared unread).
    write(os.path.join(root, "home", "bob", ".ssh", "authorized_keys2"), "# padding\n" * 200000, 0o600)
    # host-keys: one private key (with its .pub, which is no finding).
    write(os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key"), key, 0o600)
    write(os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key.pub"), "ssh-ed25519 AAAA root@builder\n")
    # password-login: ann's hash and nopass's empty field (above); sshd's
    # include comes first, so its `yes` wins over the main file's `no`; a
    # Match block lets one user in with a password.
    write(os.path.join(root, "etc", "ssh", "sshd_config"),
          "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication no\nPermitRootLogin no\n"
          "Match User backup\n    PasswordAuthentication yes\n")
    write(os.path.join(root, "etc", "ssh", "sshd_config.d", "50-cloud-init.conf"), "PasswordAuthentication yes\n")
    # histories: ann's (/home, in passwd), svc's (a home outside /home),
    # orphan's (under /home, in no passwd line), root's through a symlink.
    write(os.path.join(root, "home", "ann", ".bash_history"), "export TOKEN=%s\n" % PLANTED, 0o600)
    write(os.path.join(root, "srv", "svc", ".psql_history"), "ALTER USER svc PASSWORD '%s';\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "orphan", ".python_history"), "token = '%s'\n" % PLANTED, 0o600)
    write(os.path.join(root, "var", "tmp", "root-history"), "echo %s\n" % PLANTED, 0o600)
    # Homes whose names are not UTF-8 and show alike: each one is read.
    for odd in (b"\xffx", b"\xfex", b"\xfdx"):
        os.makedirs(os.path.join(os.fsencode(root), b"home", odd))
    with open(os.path.join(os.fsencode(root), b"home", b"\xfex", b".bash_history"), "w") as f:
        f.write("echo %s\n" % PLANTED)
    os.symlink("/var/tmp/root-history", os.path.join(root, "root", ".bash_history"))
    # credentials: each file of the table, with what makes it one.
    write(os.path.join(root, "home", "ann", ".aws", "credentials"),
          "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (PLANTED_KEY_ID, PLANTED), 0o600)
    write(os.path.join(root, "home", "ann", ".docker", "config.json"),
          '{"auths": {"registry.example.com": {"auth": "%s"}}}\n' % PLANTED, 0o600)
    write(os.path.join(root, "root", ".git-credentials"), "https://ci:%s@github.com\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".aws", "config"),
          "[profile ci]\nregion = us-east-1\naws_secret_access_key = %s\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".netrc"), "machine example.com login bob password %s\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".pgpass"), "db:5432:*:bob:%s\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".npmrc"), "//registry.npmjs.org/:_authToken=%s\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".config", "gh", "hosts.yml"),
          "github.com:\n    oauth_token: %s\n    user: bob\n" % PLANTED, 0o600)
    write(os.path.join(root, "home", "bob", ".kube", "config"),
          "users:\n- name: ci\n  user:\n    token: %s\n" % PLANTED, 0o600)
    write(os.path.join(root, "etc", "environment"), 'PATH="/usr/bin"\nAWS_ACCESS_KEY_ID=%s\n' % PLANTED_KEY_ID)
    write(os.path.join(root, "etc", "profile.d", "build.sh"), "export AWS_ACCESS_KEY_ID=ASIAPLANTED000000000\n")
    write(os.path.join(root, "etc", "profile.d", "lang.sh"), "export LANG=C.UTF-8\n")
    # instance-data: cloud-init's copy of the build's user data.
    inst = os.path.join(root, "var", "lib", "cloud", "instances", "i-0123456789abcdef0")
    write(os.path.join(inst, "user-data.txt"), "#!/bin/bash\nexport TOKEN=%s\n" % PLANTED, 0o600)
    os.symlink("/var/lib/cloud/instances/i-0123456789abcdef0", os.path.join(root, "var", "lib", "cloud", "instance"))


def clean_tree(root):
    """The same shape, cleaned as a careful build leaves it: no finding."""
    _accounts(root, [
        "root:*:19000:0:99999:7:::",
        "daemon:*:19000:0:99999:7:::",
        "ann:!$6$locked$Q9vVx0cK1p2r3s4t:19000:0:99999:7:::",
        "bob:!:19000:0:99999:7:::",
        "svc:!!:19000::::::",
        "nopass:*:19000:0:99999:7:::",
    ])
    write(os.path.join(root, "root", ".ssh", "authorized_keys"), "# cloud-init adds the launch key here\n", 0o600)
    write(os.path.join(root, "home", "ann", ".ssh", "authorized_keys"), "", 0o600)
    write(os.path.join(root, "etc", "ssh", "ssh_host_ed25519_key.pub"), "ssh-ed25519 AAAA root@builder\n")
    write(os.path.join(root, "etc", "ssh", "ssh_host_rsa_key"), "")
    write(os.path.join(root, "etc", "ssh", "sshd_config"),
          "Include /etc/ssh/sshd_config.d/*.conf\nPasswordAuthentication yes\n"
          "Match User backup\n    PermitRootLogin no\n")
    write(os.path.join(root, "etc", "ssh", "sshd_config.d", "60-hardening.conf"),
          "PasswordAuthentication no\nPermitRootLogin prohibit-password\n")
    write(os.path.join(root, "home", "ann", ".bash_history"), "", 0o600)
    os.symlink("/dev/null", os.path.join(root, "root", ".bash_history"))
    write(os.path.join(root, "srv", "svc", ".bashrc"), "# svc\n")
    write(os.path.join(root, "home", "bob", ".aws", "config"), "[default]\nregion = us-east-1\n")
    write(os.path.join(root, "home", "bob", ".docker", "config.json"), '{"auths": {}, "credsStore": "ecr-login"}\n')
    write(os.path.join(root, "home", "bob", ".npmrc"), "registry=https://registry.npmjs.org/\n")
    write(os.path.join(root, "home", "bob", ".kube", "config"),
          "users:\n- name: eks\n  user:\n    exec:\n      command: aws\n")
    write(os.path.join(root, "etc", "environment"), 'PATH="/usr/bin"\nEXAMPLE=AKIAEXAMPLE0001\n')
    write(os.path.join(root, "etc", "profile.d", "lang.sh"), "export LANG=C.UTF-8\n")
    inst = os.path.join(root, "var", "lib", "cloud", "instances", "i-0123456789abcdef0")
    write(os.path.join(inst, "user-data.txt"), "")


def home_tree(root):
    # A volume mounted at /home: no /etc, homes at its top.
    write(os.path.join(root, "carol", ".ssh", "authorized_keys"), "ssh-ed25519 AAAA%s carol@laptop\n" % PLANTED, 0o600)
    write(os.path.join(root, "carol", "notes.txt"), "nothing\n")


def oversize_tree(root):
    # A script every login shell reads, too large for the check to read:
    # the file system can't be judged, so it is unreadable, not clean.
    clean_tree(root)
    write(os.path.join(root, "etc", "profile.d", "huge.sh"), "# generated\n" * 200000)


def content_gpt(fs, fill, size=1024):
    """An AL2023-like GPT disk (BIOS boot, EFI, root on 1) of `fill`."""
    def build(path, work):
        tree = make_tree(work, "root", fill)
        gpt_disk(path, size * MIB, [
            (127, 1, 1, BIOS_BOOT, "BIOS-BOOT", lambda p, n: blob(p, n, GRUB_CORE)),
            (128, 2, 10, EFI, "EFI-SYSTEM", fat_fs),
            (1, 12, None, LINUX, "Linux", lambda p, n: fs(p, n, tree)),
        ], work)
    return build


def content_plain(fs, fill, size):
    """No partition table: the file system is the whole volume."""
    def build(path, work):
        fs(path, size * MIB, make_tree(work, "root", fill))
    return build


CONTENT_IMAGES = {
    "planted-xfs": content_gpt(xfs_fs, planted_tree),
    "planted-ext4": content_gpt(ext_fs, planted_tree),
    "planted-xfs-plain": content_plain(xfs_fs, planted_tree, 300),
    # Without metadata checksums (as plain-ext4): the fuzz pass's flipped
    # bits reach the parsers the check drives.
    "planted-ext4-plain": content_plain(lambda p, n, t: ext_fs(p, n, t, features="^metadata_csum"), planted_tree, 128),
    "planted-home": content_plain(xfs_fs, home_tree, 300),
    "clean-xfs": content_gpt(xfs_fs, clean_tree),
    "clean-ext4-plain": content_plain(ext_fs, clean_tree, 128),
    "oversize-ext4-plain": content_plain(ext_fs, oversize_tree, 128),
}


# make bench's fixtures (bench/run.py --only ebs): the AL2023-like and
# Ubuntu-like 8 GiB layouts above with a tree of >= 20,000 files (1,300
# packages of 16 files, plus the rest of root_tree). Their own directory and
# version, so the test images stay as they are.
BENCH_VERSION = 1
BENCH_PACKAGES = 1300


def bench_al2023(path, work):
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_AL2023, BENCH_PACKAGES))
    gpt_disk(path, 8 * 1024 * MIB, [
        (127, 1, 1, BIOS_BOOT, "BIOS-BOOT", lambda p, n: blob(p, n, GRUB_CORE)),
        (128, 2, 10, EFI, "EFI-SYSTEM", fat_fs),
        (1, 12, None, LINUX, "Linux", lambda p, n: xfs_fs(p, n, tree)),
    ], work)


def bench_ubuntu(path, work):
    tree = make_tree(work, "root", lambda r: root_tree(r, OS_UBUNTU, BENCH_PACKAGES))
    boot = make_tree(work, "boot", boot_tree)
    gpt_disk(path, 8 * 1024 * MIB, [
        (14, 1, 4, BIOS_BOOT, "", lambda p, n: blob(p, n, GRUB_CORE)),
        (15, 5, 106, EFI, "", fat_fs),
        (16, 111, 913, XBOOTLDR, "", lambda p, n: ext_fs(p, n, boot, label="BOOT")),
        (1, 1024, None, LINUX, "", lambda p, n: ext_fs(p, n, tree, label="cloudimg-rootfs")),
    ], work)


BENCH_IMAGES = {
    "al2023": bench_al2023,
    "ubuntu": bench_ubuntu,
}

IMAGES = {
    "al2023": al2023,
    "ubuntu": ubuntu,
    "debian": debian,
    "plain-ext4": plain_ext4,
    "mbr": mbr,
    "data": data_volume,
    "hostile-ext4": hostile_ext4,
    "hostile-xfs": hostile_xfs,
    **CONTENT_IMAGES,
}

if __name__ == "__main__":
    main()
