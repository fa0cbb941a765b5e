#include "generate.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <string_view>
#include <vector>

namespace fieldlink::cli {
namespace {

// roff: a leading '.' or '\'' starts a request, '\' an escape, '-' in option names must be '\-'.
std::string roff(std::string_view text) {
    std::string out;
    bool line_start = true;
    for (const char c : text) {
        if (line_start && (c == '.' || c == '\'')) out += "\\&";
        if (c == '\\') {
            out += "\\e";
        } else if (c == '-') {
            out += "\\-";
        } else {
            out += c;
        }
        line_start = c == '\n';
    }
    return out;
}

// Option groups (add_option_group) are nameless subcommands in CLI11: their
// options belong to the command that holds them, and they are no subcommand.
bool is_option_group(const CLI::App* app) { return app->get_name().empty(); }

std::vector<const CLI::App*> subcommands(const CLI::App& app) {
    std::vector<const CLI::App*> out;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); })) {
        if (!is_option_group(sub)) out.push_back(sub);
    }
    return out;
}

std::vector<const CLI::Option*> visible_options(const CLI::App& app) {
    std::vector<const CLI::Option*> out;
    for (const CLI::Option* option : app.get_options([](const CLI::Option* o) { return !o->get_group().empty(); })) {
        out.push_back(option);
    }
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App* a) { return !a->get_group().empty(); })) {
        if (!is_option_group(sub)) continue;
        for (const CLI::Option* option : visible_options(*sub)) {
            if (option->get_name() != "--help") out.push_back(option);  // a group's own help flag is not reachable
        }
    }
    return out;
}

std::string option_names(const CLI::Option* option) {
    std::string names = option->get_name(false, true);  // "-d,--device" or "NAME"
    // The type name without what the validators append ("N:INT in [0 - 255]" is N).
    const std::string type = option->get_type_name().substr(0, option->get_type_name().find(':'));
    if (!option->get_positional() && option->get_type_size() != 0 && !type.empty()) names += " " + type;
    return names;
}

void man_options(std::string& out, const CLI::App& app) {
    for (const CLI::Option* option : visible_options(app)) {
        std::string text = option->get_description();
        if (option->get_type_size() != 0 && !option->get_default_str().empty()) {
            text += " (default: " + option->get_default_str() + ")";
        }
        out += fmt::format(".TP\n.B {}\n{}\n", roff(option_names(option)), roff(text));
    }
}

void man_subcommands(std::string& out, const CLI::App& app, const std::string& prefix) {
    for (const CLI::App* sub : subcommands(app)) {
        const std::string name = prefix + " " + sub->get_name();
        out += fmt::format(".SS {}\n{}\n", roff(name), roff(sub->get_description()));
        if (!visible_options(*sub).empty()) {
            out += ".RS\n";
            man_options(out, *sub);
            out += ".RE\n";
        }
        // CLI11 hands the parent's footer down: print only a subcommand's own.
        if (!sub->get_footer().empty() && sub->get_footer() != app.get_footer()) {
            out += fmt::format(".PP\n.nf\n{}\n.fi\n", roff(sub->get_footer()));
        }
        man_subcommands(out, *sub, name);
    }
}

std::vector<std::string> words(const CLI::App& app) {
    std::vector<std::string> out;
    for (const CLI::Option* option : visible_options(app)) {
        if (option->get_positional()) continue;
        for (const std::string& s : option->get_snames()) out.push_back("-" + s);
        for (const std::string& l : option->get_lnames()) out.push_back("--" + l);
    }
    for (const CLI::App* sub : subcommands(app)) out.push_back(sub->get_name());
    return out;
}

void completion_cases(std::string& out, const CLI::App& app, const std::string& path) {
    std::string joined;
    for (const std::string& w : words(app)) joined += (joined.empty() ? "" : " ") + w;
    out += fmt::format("        \"{}\") words=\"{}\" ;;\n", path, joined);
    for (const CLI::App* sub : subcommands(app)) {
        completion_cases(out, *sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
    }
}

}  // namespace

std::string man_page(const CLI::App& app, const std::string& version) {
    std::string out;
    out += fmt::format(".TH FIELDLINK 1 \"\" \"fieldlink {}\" \"User Commands\"\n", roff(version));
    out += fmt::format(".SH NAME\nfieldlink \\- {}\n", roff(app.get_description()));
    out += ".SH SYNOPSIS\n.B fieldlink\n[\\fIOPTIONS\\fR] \\fISUBCOMMAND\\fR [\\fIARGS\\fR]\n";
    out += ".SH OPTIONS\n";
    man_options(out, app);
    out += ".SH SUBCOMMANDS\n";
    man_subcommands(out, app, "fieldlink");
    if (!app.get_footer().empty()) out += fmt::format(".SH NOTES\n.nf\n{}\n.fi\n", roff(app.get_footer()));
    out += ".SH SEE ALSO\n.BR fieldlink-gateway (1),\n/usr/share/doc/fieldlink-gateway/operations.md\n";
    return out;
}

std::string bash_completion(const CLI::App& app) {
    std::string out =
        "# bash completion for fieldlink (generated by fieldlink --generate bash-completion)\n"
        "_fieldlink() {\n"
        "    local cur path words i w\n"
        "    cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
        "    path=\"\"\n"
        "    # The subcommand path so far: the words that name subcommands.\n"
        "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "        w=\"${COMP_WORDS[i]}\"\n"
        "        case \"$w\" in -*) continue ;; esac\n"
        "        case \" $(_fieldlink_words \"$path\") \" in *\" $w \"*) path=\"${path:+$path }$w\" ;; esac\n"
        "    done\n"
        "    case \"${COMP_WORDS[COMP_CWORD-1]}\" in\n"
        "        --db|--config|-o|--output|--generate-output) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
        "    esac\n"
        "    if [[ \"$path\" == check-config && \"$cur\" != -* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); return; "
        "fi\n"
        "    COMPREPLY=($(compgen -W \"$(_fieldlink_words \"$path\")\" -- \"$cur\"))\n"
        "}\n"
        "_fieldlink_words() {\n"
        "    local words=\"\"\n"
        "    case \"$1\" in\n";
    completion_cases(out, app, "");
    out +=
        "    esac\n"
        "    echo \"$words\"\n"
        "}\n"
        "complete -F _fieldlink fieldlink\n";
    return out;
}

}  // namespace fieldlink::cli
