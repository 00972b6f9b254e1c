//! `causeway completions SHELL` and `causeway man --dir DIR`: shell completions and man pages
//! generated from this command line's own clap definition (clap_complete, clap_mangen), so that
//! they can never describe another command line than the one installed. The Debian package makes
//! them at build time (packaging/build-deb.sh) and installs them where shells and `man` look.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

/// The binary's name, as shells complete it and man pages are named after it.
const BIN: &str = "causeway";

#[derive(clap::Args)]
#[command(after_help = "Examples:
  causeway completions bash > /usr/share/bash-completion/completions/causeway
  causeway completions zsh  > /usr/share/zsh/vendor-completions/_causeway
  causeway completions fish > /usr/share/fish/vendor_completions.d/causeway.fish
  source <(causeway completions bash)     # this shell only

The Debian package installs the bash, zsh and fish scripts already.")]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
#[command(after_help = "Example:
  causeway man --dir target/man && man -l target/man/causeway-certs-init.1

One page per command and subcommand: causeway.1, causeway-certs.1, causeway-certs-init.1, ...
The Debian package installs them compressed under /usr/share/man/man1.")]
pub(crate) struct ManArgs {
    /// Directory to write the pages into (created if missing; pages there are replaced).
    #[arg(long)]
    dir: PathBuf,
}

/// Print the completion script for one shell on stdout.
pub(crate) fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    // Into memory first: clap_complete panics on a write error, and stdout may be a closed pipe.
    let script = completion_script(args.shell);
    std::io::stdout()
        .write_all(&script)
        .and_then(|()| std::io::stdout().flush())
        .context("cannot write the completion script to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut command = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, BIN, &mut script);
    script
}

/// Write one man page per command and subcommand into `--dir`, and say how many.
pub(crate) fn man(args: ManArgs) -> Result<ExitCode> {
    let pages = write_man_pages(&args.dir)?;
    println!("{} man pages in {}", pages.len(), args.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The pages of `causeway` and every visible subcommand, written into `dir`; their paths.
fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the man page directory", dir.display()))?;
    // Built once with the `help` pseudo-subcommand off: building sets each subcommand's full
    // name (`causeway-certs-init`), which names its page and its synopsis.
    let mut command = super::Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    write_pages(command, dir, &mut pages)
        .with_context(|| format!("{}: cannot write a man page", dir.display()))?;
    Ok(pages)
}

fn write_pages(
    command: clap::Command,
    dir: &Path,
    pages: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, pages)?;
    }
    // Every page names the package it documents (a subcommand has no version of its own).
    let man = clap_mangen::Man::new(command)
        .source(concat!("causeway ", env!("CARGO_PKG_VERSION")))
        .manual("Causeway manual");
    pages.push(man.generate_to(dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_command_and_subcommand_has_a_page_naming_its_options() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pages = write_man_pages(dir.path()).expect("pages written");
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // One page for the top, one per command, one per subcommand of a command group; none
        // for the `help` pseudo-command.
        for expected in [
            "causeway.1",
            "causeway-serve.1",
            "causeway-certs.1",
            "causeway-certs-init.1",
            "causeway-federation-publish.1",
            "causeway-log-verify.1",
            "causeway-completions.1",
            "causeway-man.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let top = super::super::Cli::command();
        let commands = top.get_subcommands().count();
        assert!(
            names.len() > commands + 1,
            "{} pages for {commands} commands",
            names.len()
        );

        let init = page(dir.path(), "causeway-certs-init.1");
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            init.contains(&format!(
                ".TH causeway-certs-init 1  \"causeway {version}\""
            )),
            "{init}"
        );
        assert!(init.contains("causeway\\-certs\\-init"), "{init}");
        assert!(init.contains("\\-\\-federation"), "{init}");
        assert!(
            init.contains("causeway certs init \\-\\-federation demo"),
            "{init}"
        );
        let serve = page(dir.path(), "causeway-serve.1");
        assert!(serve.contains("\\-\\-config"), "{serve}");
        let top_page = page(dir.path(), "causeway.1");
        assert!(top_page.contains("causeway\\-federation(1)"), "{top_page}");
    }

    fn completion(shell: clap_complete::Shell) -> String {
        String::from_utf8(completion_script(shell)).expect("a completion script is text")
    }

    #[test]
    fn completions_know_the_commands_and_their_options() {
        use clap_complete::Shell;
        let bash = completion(Shell::Bash);
        assert!(bash.contains("complete -F _causeway"), "{bash}");
        for word in [
            "federation",
            "verify-report",
            "--legal-basis",
            "--log-format",
        ] {
            assert!(bash.contains(word), "bash: {word} missing");
        }
        let zsh = completion(Shell::Zsh);
        assert!(zsh.starts_with("#compdef causeway"), "{zsh}");
        assert!(zsh.contains("--legal-basis"), "zsh");
        let fish = completion(Shell::Fish);
        assert!(fish.contains("complete -c causeway"), "{fish}");
        assert!(fish.contains("-l legal-basis"), "fish");
    }
}
