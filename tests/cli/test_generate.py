"""The man page and the bash completion that `fieldlink --generate` makes from the
same definitions as --help: the page renders and names every subcommand and
option --help lists; the script is valid bash and completes subcommands and options."""

import re
import shutil
import subprocess
import unittest

from cli_common import FIELDLINK, fl

# Every command that has its own --help (a subcommand path).
COMMANDS = [[], ["devices"], ["query"], ["export"], ["status"], ["dead-letters"], ["check-config"], ["device"],
            ["device", "add"]]


def help_of(path):
    r = fl(*path, "--help")
    assert r.returncode == 0, r.stderr
    return r.stdout


def options_in_help(text):
    """The long and short option names --help lists (its option lines start with them)."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"\s+((?:-{1,2}[A-Za-z][\w-]*,?)+)", line)
        if m:
            names.update(m.group(1).rstrip(",").split(","))
    return names


def subcommands_in_help(text):
    if "\nSubcommands:\n" not in text:
        return []
    block = text.split("\nSubcommands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.startswith("  ") and line.strip()]


def complete(script, words):
    """What the completion function offers for COMP_WORDS = words (the last one being completed)."""
    line = " ".join(words)
    cmd = (f"source {script}\n"
           f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
           f"COMP_CWORD={len(words) - 1}\nCOMP_LINE={line!r}\nCOMP_POINT={len(line)}\n"
           "_fieldlink\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return sorted(filter(None, r.stdout.splitlines()))


class Generate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.man = fl("--generate", "man").stdout
        cls.completion = fl("--generate", "bash-completion").stdout

    def test_man_page_renders(self):
        groff = shutil.which("groff")
        if not groff:
            self.skipTest("groff is not installed (Debian groff-base)")
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z"], input=self.man, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, ""), "groff warns about the page")
        text = subprocess.run([groff, "-man", "-Tascii", "-P-cbou"], input=self.man, capture_output=True,
                              text=True, check=True, timeout=30).stdout
        for heading in ("NAME", "SYNOPSIS", "OPTIONS", "SUBCOMMANDS", "NOTES", "SEE ALSO"):
            self.assertRegex(text, rf"(?m)^{heading}$")
        self.assertRegex(text, r"fieldlink\s+-\s+the\s+fieldlink\s+gateway's\s+operator\s+command")
        # Every subcommand and every option --help lists, in its subcommand's section.
        sections = re.split(r"(?m)^   (fieldlink(?: [a-z-]+)*)$", text)
        by_command = {sections[i]: sections[i + 1] for i in range(1, len(sections) - 1, 2)}
        by_command["fieldlink"] = sections[0]
        for path in COMMANDS:
            name = " ".join(["fieldlink", *path])
            self.assertIn(name, by_command, f"no section for {name}")
            section = by_command[name]
            shown = set(re.findall(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)", section))
            missing = options_in_help(help_of(path)) - shown
            self.assertFalse(missing, f"{name}: options in --help but not in the man page: {sorted(missing)}")
            for sub in subcommands_in_help(help_of(path)):
                self.assertIn(f"{name} {sub}", by_command)
        self.assertNotIn("--generate", text)  # hidden: for the build only
        # Type names without the validators' text; defaults shown.
        self.assertIn("--busy-timeout MS\n", text)
        self.assertIn("(default: 5000)", text)

    def test_man_page_with_man(self):
        man = shutil.which("man")
        if not man:
            self.skipTest("man is not installed (Debian man-db)")
        page = self.tmp_file("fieldlink.1", self.man)
        r = subprocess.run([man, "-l", "-Tutf8", page], capture_output=True, text=True, timeout=30,
                           env={"MANPAGER": "cat", "PATH": "/usr/bin:/bin", "MANWIDTH": "100"})
        self.assertEqual(r.returncode, 0, r.stderr)
        text = re.sub(".\b", "", r.stdout)  # overstrike bold and underline
        self.assertIn("fieldlink device add", text)
        self.assertIn("--ndjson", text)

    def tmp_file(self, name, text):
        import tempfile
        d = tempfile.mkdtemp(prefix="fieldlink-cli-generate-")
        self.addCleanup(shutil.rmtree, d)
        path = f"{d}/{name}"
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_generate_output_file(self):
        path = self.tmp_file("placeholder", "")
        r = subprocess.run([FIELDLINK, "--generate", "man", "--generate-output", path], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), self.man)
        self.assertEqual(fl("--generate", "html").returncode, 2)

    def test_completion_is_valid_bash(self):
        script = self.tmp_file("fieldlink.bash", self.completion)
        r = subprocess.run(["bash", "-n", script], capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, ""))

    def test_completion_completes(self):
        script = self.tmp_file("fieldlink.bash", self.completion)
        top = subcommands_in_help(help_of([]))
        self.assertEqual(complete(script, ["fieldlink", ""]),
                         sorted(top + sorted(options_in_help(help_of([])))))
        self.assertEqual(complete(script, ["fieldlink", "d"]), ["dead-letters", "device", "devices"])
        self.assertEqual(complete(script, ["fieldlink", "qu"]), ["query"])
        self.assertEqual(complete(script, ["fieldlink", "device", ""]), ["--help", "-h", "add"])
        for path in COMMANDS[1:]:
            self.assertEqual(complete(script, ["fieldlink", *path, "-"]), sorted(options_in_help(help_of(path))),
                             path)
        # The output format flags of query's option group; options after global ones.
        self.assertEqual(complete(script, ["fieldlink", "--db", "x.db", "query", "--nd"]), ["--ndjson"])
        self.assertEqual(complete(script, ["fieldlink", "query", "--csv", "--li"]), ["--limit"])
        self.assertEqual(complete(script, ["fieldlink", "device", "add", "--pass"]),
                         ["--password", "--password-file"])
        # Files where a file is wanted.
        d = self.tmp_file("gateway.toml", "")
        self.assertEqual(complete(script, ["fieldlink", "check-config", d[:-5]]), [d])
        self.assertEqual(complete(script, ["fieldlink", "--db", d[:-5]]), [d])
        r = subprocess.run(["bash", "-c", f"source {script}; complete -p fieldlink"], capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "complete -F _fieldlink fieldlink")


if __name__ == "__main__":
    unittest.main()
