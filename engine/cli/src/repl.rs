//! The interactive shell: prompts, multi-line statements, history, and
//! Ctrl-C handling. Also the masked password prompt, which uses the same
//! line editor.

use std::borrow::Cow;
use std::path::PathBuf;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Behavior, ColorMode, Config, DefaultEditor, Editor, Helper};
use tokio::runtime::Runtime;

use crate::error::CliError;
use crate::split::split_statements;
use crate::{Runner, report_error, report_note};

const PROMPT: &str = "sqe> ";
const CONTINUATION_PROMPT: &str = "   -> ";
const HISTORY_FILE: &str = ".sqe_history";
const HISTORY_SIZE: usize = 1000;

/// What a line typed at an empty prompt asks for, besides SQL.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Quit,
    Help,
    Unknown(String),
}

/// Recognises `quit`, `exit`, `\q`, `help`, `\?` and other backslash commands.
fn parse_command(line: &str) -> Option<Command> {
    let word = line.trim().trim_end_matches(';').trim();
    match word.to_ascii_lowercase().as_str() {
        "quit" | "exit" | "\\q" => Some(Command::Quit),
        "help" | "\\?" | "\\h" => Some(Command::Help),
        _ if word.starts_with('\\') => Some(Command::Unknown(word.to_string())),
        _ => None,
    }
}

const HELP: &str = "\
Enter SQL statements terminated by ';'. A statement may span several lines.
  \\q, quit, exit   leave the shell (or press Ctrl-D)
  \\?, help         show this help
Ctrl-C clears the statement being typed, or cancels a running one.";

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(HISTORY_FILE))
}

fn new_editor() -> Result<DefaultEditor, CliError> {
    let config = Config::builder()
        .max_history_size(HISTORY_SIZE)
        .and_then(|builder| builder.history_ignore_dups(true))
        .map_err(|e| CliError::Other(format!("could not set up the line editor: {e}")))?
        .auto_add_history(false)
        .build();
    DefaultEditor::with_config(config)
        .map_err(|e| CliError::Other(format!("could not set up the line editor: {e}")))
}

/// Runs the shell until `quit` or Ctrl-D. Errors of single statements are
/// printed and the shell goes on; only a broken terminal ends it with an error.
pub fn run(runtime: &Runtime, runner: &mut Runner, target: &str) -> Result<(), CliError> {
    let mut editor = new_editor()?;
    let history = history_path();
    if let Some(path) = &history {
        // A missing or unreadable history file is not worth a word.
        let _ = editor.load_history(path);
    }
    report_note(&format!(
        "Connected to SQE at {target}. Type \\? for help, \\q to quit."
    ));

    let result = read_eval_loop(runtime, runner, &mut editor);

    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    result
}

fn read_eval_loop(
    runtime: &Runtime,
    runner: &mut Runner,
    editor: &mut DefaultEditor,
) -> Result<(), CliError> {
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(CliError::Other(format!("could not read input: {e}"))),
        };

        if buffer.is_empty() {
            match parse_command(&line) {
                Some(Command::Quit) => return Ok(()),
                Some(Command::Help) => {
                    report_note(HELP);
                    continue;
                }
                Some(Command::Unknown(command)) => {
                    report_error(&CliError::Other(format!(
                        "unknown command {command}; type \\? for help"
                    )));
                    continue;
                }
                None => {}
            }
        } else {
            buffer.push('\n');
        }
        buffer.push_str(&line);

        let split = split_statements(&buffer);
        if !split.complete.is_empty() {
            let _ = editor.add_history_entry(buffer[..split.consumed].trim());
        }
        for statement in &split.complete {
            match runner.run_interactive(runtime, statement) {
                Ok(()) => {}
                // Output to a closed pipe cannot get better by going on.
                Err(e) if e.is_broken_pipe() => return Err(e),
                Err(e) => report_error(&e),
            }
        }
        buffer = split.rest.unwrap_or_default();
    }
}

/// Asks for a password on the terminal without showing it. Returns `None`
/// when there is no terminal to ask on.
pub fn prompt_password(user: &str) -> Result<Option<String>, CliError> {
    // Read from /dev/tty, like psql, so that it works even when stdin or
    // stdout are redirected; without a terminal there is nobody to ask.
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err()
    {
        return Ok(None);
    }
    let config = Config::builder()
        .behavior(Behavior::PreferTerm)
        .color_mode(ColorMode::Forced)
        .auto_add_history(false)
        .build();
    let editor_error = |e: ReadlineError| CliError::Other(format!("could not read password: {e}"));
    let mut editor: Editor<Masked, DefaultHistory> =
        Editor::with_config(config).map_err(editor_error)?;
    editor.set_helper(Some(Masked));
    let cursor = editor.set_cursor_visibility(false).map_err(editor_error)?;
    let password = editor.readline(&format!("Password for user {user}: "));
    drop(cursor);
    match password {
        Ok(password) => Ok(Some(password)),
        Err(ReadlineError::Interrupted | ReadlineError::Eof) => {
            Err(CliError::Other("no password given".to_string()))
        }
        Err(e) => Err(editor_error(e)),
    }
}

/// A line-editor helper that draws the typed line as blanks.
struct Masked;

impl Highlighter for Masked {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Owned(" ".repeat(line.chars().count()))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        kind != CmdKind::MoveCursor
    }
}

impl Completer for Masked {
    type Candidate = String;
}

impl Hinter for Masked {
    type Hint = String;
}

impl Validator for Masked {}

impl Helper for Masked {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_commands() {
        assert_eq!(parse_command("quit"), Some(Command::Quit));
        assert_eq!(parse_command("  EXIT; "), Some(Command::Quit));
        assert_eq!(parse_command("\\q"), Some(Command::Quit));
        assert_eq!(parse_command("\\?"), Some(Command::Help));
        assert_eq!(parse_command("help"), Some(Command::Help));
        assert_eq!(
            parse_command("\\dt"),
            Some(Command::Unknown("\\dt".to_string()))
        );
        assert_eq!(parse_command("select 1;"), None);
        assert_eq!(parse_command("quit_table"), None);
        assert_eq!(parse_command(""), None);
    }
}
