//! What a shell command line would touch, read as a POSIX shell (bash)
//! reads it: every program it runs (`exec`), every file a redirection
//! reads or writes, with the directories relative names are taken from.
//! Pure: no I/O, no environment; the caller gives the working directory
//! and `HOME`.
//!
//! Fail closed: whatever it cannot prove it has understood is [`Unsure`]
//! with the reason, never a shorter list. That includes a program or a
//! redirection target named by a variable, a glob or a command
//! substitution; control flow (`if`, `for`, `case`, functions); `eval`,
//! `source`, aliases and scripts the shell would read from a file;
//! assignments to `PATH`, `IFS`, `LD_*` and the like; process
//! substitution; and anything unterminated.
//!
//! What it follows: `;`, `&`, `&&`, `||`, newlines, pipes, `( … )`
//! subshells, `$( … )` and backticks (also inside double quotes, also
//! nested), `sh -c`/`bash -c` strings, wrappers that run their arguments
//! as a command (`env`, `nice`, `nohup`, `timeout`, `time`, `command`,
//! `exec`, `xargs`, `sudo`, …, each also judged itself), `NAME=value`
//! prefixes, redirections (`>`, `>>`, `>|`, `&>`, `&>>`, `<>` as writes,
//! `<` as a read; `2>&1` and `/dev/null` touch nothing), here-documents
//! and here-strings (data), comments, quoting and line continuations.
//!
//! The operands of well-known file utilities are judged too: `cat`,
//! `head`, `grep`, … read theirs, `touch`, `tee`, `sed -i` write, `cp`
//! and `ln` read all but the last and write it, `mv` deletes its sources,
//! `rm` deletes; other programs' arguments are theirs to interpret, and
//! only the `exec` scope decides whether they run.
//!
//! `cd DIR` changes the base of later relative names. A `cd` may fail and
//! the shell goes on in the old directory, so afterwards a relative name
//! is judged under every directory the shell may be in.

use std::fmt;

/// Longest command line analysed, in bytes.
pub const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of substitutions, subshells and `sh -c` strings.
const MAX_DEPTH: usize = 16;
/// Most directories a relative name is judged under.
const MAX_CWDS: usize = 16;

/// What a command line does to one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touch {
    /// Run, read or write.
    pub kind: TouchKind,
    /// The program or file as the shell would name it (tilde expanded,
    /// quotes removed); relative ones are taken from `cwd`.
    pub target: String,
    /// The working directory the shell would be in.
    pub cwd: String,
}

/// How a resource is touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchKind {
    /// A program run (`exec:run`).
    Exec,
    /// A file read by a redirection or a known reader (`files:read`).
    Read,
    /// A file written by a redirection or a known writer (`files:write`).
    Write,
    /// A file removed by a known remover (`files:delete`).
    Delete,
}

/// A command line Ward cannot judge, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsure(pub String);

impl fmt::Display for Unsure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn unsure<T>(why: impl Into<String>) -> Result<T, Unsure> {
    Err(Unsure(why.into()))
}

/// Everything `line` would run, read or write when started in `cwd`,
/// with `home` for `~`.
pub fn analyse(line: &str, cwd: &str, home: Option<&str>) -> Result<Vec<Touch>, Unsure> {
    if line.len() > MAX_LINE {
        return unsure(format!("the command line is longer than {MAX_LINE} bytes"));
    }
    if line.contains('\0') {
        return unsure("the command line contains a NUL byte");
    }
    let mut touches = Vec::new();
    let mut cwds = vec![cwd.to_owned()];
    let mut parser = Parser {
        chars: line.chars().collect(),
        pos: 0,
        home: home.map(str::to_owned),
        heredocs: Vec::new(),
    };
    parser.list(&mut cwds, &mut touches, 0, false)?;
    touches.dedup();
    Ok(touches)
}

/// A word after quote removal, with what makes its value unknowable here.
#[derive(Debug, Default)]
struct Word {
    text: String,
    /// Why the value cannot be known statically (a variable, a
    /// substitution, an unquoted glob, `~user`).
    dynamic: Option<&'static str>,
    /// Whether any part of it was quoted (a quoted keyword is no keyword).
    quoted: bool,
    /// The place of a `( … )` subshell already judged.
    subshell: bool,
}

/// A token of the command language.
#[derive(Debug)]
enum Token {
    Word(Word),
    /// `;`, `&`, `&&`, `||`, `|`, `|&`, a newline, `(`, `)`.
    Op(&'static str),
    /// A redirection with its target (none for `>&2`-style duplications).
    Redirect(Option<(TouchKind, Word)>),
    End,
}

/// A here-document waiting for the end of its line.
struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
    /// An unquoted delimiter: the body is expanded.
    expands: bool,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    home: Option<String>,
    heredocs: Vec<Heredoc>,
}

/// A simple command being gathered.
#[derive(Default)]
struct Simple {
    words: Vec<Word>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        if self
            .chars
            .get(self.pos..self.pos + n)
            .is_some_and(|got| got.iter().copied().eq(s.chars()))
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    /// A list of pipelines up to the end (or, `nested`, up to its `)`),
    /// adding what they touch to `touches` and following `cd` in `cwds`.
    fn list(
        &mut self,
        cwds: &mut Vec<String>,
        touches: &mut Vec<Touch>,
        depth: usize,
        nested: bool,
    ) -> Result<(), Unsure> {
        if depth > MAX_DEPTH {
            return unsure(format!(
                "substitutions, subshells and `sh -c` strings nest deeper than {MAX_DEPTH}"
            ));
        }
        let mut pipeline: Vec<Simple> = Vec::new();
        let mut current = Simple::default();
        loop {
            let token = self.token(cwds, touches, depth)?;
            match token {
                Token::Word(word) => current.words.push(word),
                Token::Redirect(None) => {}
                Token::Redirect(Some((kind, target))) => {
                    redirect(kind, &target, cwds, touches)?;
                }
                Token::Op("(") => {
                    if !current.words.is_empty() {
                        return unsure("`(` in the middle of a command");
                    }
                    // A subshell: its `cd` does not leak out.
                    let mut inner = cwds.clone();
                    self.list(&mut inner, touches, depth + 1, true)?;
                    // Its redirections after `)` belong to it.
                    current.words.push(Word {
                        subshell: true,
                        ..Word::default()
                    });
                }
                Token::Op(")") => {
                    if !nested {
                        return unsure("a `)` without its `(`");
                    }
                    self.finish(&mut pipeline, current, cwds, touches, depth)?;
                    return Ok(());
                }
                Token::Op(op @ ("|" | "|&")) => {
                    if current.words.is_empty() {
                        return unsure(format!("`{op}` without a command before it"));
                    }
                    pipeline.push(std::mem::take(&mut current));
                }
                Token::Op(_) => {
                    self.finish(
                        &mut pipeline,
                        std::mem::take(&mut current),
                        cwds,
                        touches,
                        depth,
                    )?;
                }
                Token::End => {
                    if nested {
                        return unsure("a `(` or `$(` without its `)`");
                    }
                    if !self.heredocs.is_empty() {
                        return unsure("a here-document without its body");
                    }
                    return self.finish(&mut pipeline, current, cwds, touches, depth);
                }
            }
        }
    }

    /// Judges a finished pipeline. `cd` changes `cwds` only when it is a
    /// pipeline of its own (a `cd` in a pipe runs in a subshell).
    fn finish(
        &mut self,
        pipeline: &mut Vec<Simple>,
        last: Simple,
        cwds: &mut Vec<String>,
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        if !last.words.is_empty() {
            pipeline.push(last);
        }
        let alone = pipeline.len() == 1;
        for simple in pipeline.drain(..) {
            let mut scratch;
            let cwds_for: &mut Vec<String> = if alone {
                cwds
            } else {
                scratch = cwds.clone();
                &mut scratch
            };
            self.command(simple.words, cwds_for, touches, depth)?;
        }
        Ok(())
    }

    /// Judges one simple command (assignments, the program, its words).
    fn command(
        &mut self,
        words: Vec<Word>,
        cwds: &mut Vec<String>,
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        let mut argv: Vec<Word> = Vec::new();
        let mut assigning = true;
        for word in words {
            if assigning && let Some(name) = assignment_name(&word) {
                check_assignment(name)?;
                continue;
            }
            assigning = false;
            argv.push(word);
        }
        match argv.as_slice() {
            [only] if only.subshell => return Ok(()),
            [first, ..] if first.subshell => return unsure("words after a `( … )` subshell"),
            _ => {}
        }
        self.program(&argv, cwds, touches, depth)
    }

    /// Judges `argv` as a command: its program, and what a wrapper or a
    /// shell runs of its arguments.
    fn program(
        &mut self,
        argv: &[Word],
        cwds: &mut Vec<String>,
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        let Some(first) = argv.first() else {
            return Ok(());
        };
        if let Some(why) = first.dynamic {
            return unsure(format!(
                "the program to run is not written out ({why}); name it literally"
            ));
        }
        let name = first.text.as_str();
        if !first.quoted && KEYWORDS.contains(&name) {
            return unsure(format!(
                "`{name}`: shell control flow is not judged; run each command on its own"
            ));
        }
        if UNJUDGED.contains(&name) {
            return unsure(format!(
                "`{name}` runs commands Ward cannot see; run them directly"
            ));
        }
        let args = &argv[1..];
        match name {
            "cd" => return cd(args, cwds, self.home.as_deref()),
            "pushd" | "popd" => {
                return unsure(format!("`{name}`: use `cd` with a literal directory"));
            }
            "export" | "declare" | "typeset" | "readonly" | "local" => {
                for arg in args {
                    if let Some(name) = arg.text.split_once('=').map(|(n, _)| n) {
                        check_assignment(name)?;
                    }
                }
                return Ok(());
            }
            _ if BUILTINS.contains(&name) => return Ok(()),
            _ => {}
        }
        // `exec`, `command` and `time` are the shell's own: only what they
        // run is a program.
        if !SHELL_WRAPPERS.contains(&name) {
            for cwd in cwds.iter() {
                push(touches, TouchKind::Exec, name, cwd);
                if !name.contains('/') {
                    break;
                }
            }
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        if SHELLS.contains(&base) {
            return self.shell(base, args, cwds, touches, depth);
        }
        files(base, args, cwds, touches)?;
        if base == "find" {
            return self.find(args, cwds, touches, depth);
        }
        if let Some(skip) = wrapped_start(base, args)? {
            let mut inner = cwds.clone();
            return self.program(&args[skip..], &mut inner, touches, depth + 1);
        }
        Ok(())
    }

    /// `find`: what its `-exec`, `-execdir`, `-ok` and `-okdir` run.
    fn find(
        &mut self,
        args: &[Word],
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        let mut index = 0;
        while let Some(arg) = args.get(index) {
            match arg.text.as_str() {
                "-exec" | "-execdir" | "-ok" | "-okdir" => {
                    let end = args[index + 1..]
                        .iter()
                        .position(|a| a.text == ";" || a.text == "+")
                        .map_or(args.len(), |at| index + 1 + at);
                    let mut inner = cwds.to_vec();
                    self.program(&args[index + 1..end], &mut inner, touches, depth + 1)?;
                    index = end + 1;
                }
                "-delete" | "-fprint" | "-fprint0" | "-fprintf" | "-fls" => {
                    return unsure(format!(
                        "`find {}` writes or deletes files Ward cannot list",
                        arg.text
                    ));
                }
                _ => index += 1,
            }
        }
        Ok(())
    }

    /// `sh -c STRING`: the string is a command line of its own.
    fn shell(
        &mut self,
        shell: &str,
        args: &[Word],
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        let mut index = 0;
        while let Some(arg) = args.get(index) {
            if arg.dynamic.is_some() {
                return unsure(format!("`{shell}` with an argument Ward cannot read"));
            }
            let text = arg.text.as_str();
            if text == "-c"
                || (text.starts_with('-') && !text.starts_with("--") && text.contains('c'))
            {
                let Some(script) = args.get(index + 1) else {
                    return unsure(format!("`{shell} -c` without a command"));
                };
                if let Some(why) = script.dynamic {
                    return unsure(format!(
                        "`{shell} -c` with a command that is not written out ({why})"
                    ));
                }
                let mut inner = Parser {
                    chars: script.text.chars().collect(),
                    pos: 0,
                    home: self.home.clone(),
                    heredocs: Vec::new(),
                };
                let mut cwds = cwds.to_vec();
                return inner.list(&mut cwds, touches, depth + 1, false);
            }
            if text.starts_with('-') || text.starts_with('+') {
                if matches!(text, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
                    return unsure(format!(
                        "`{shell} {text}` reads options or files Ward does not follow"
                    ));
                }
                index += 1;
                continue;
            }
            return unsure(format!(
                "`{shell} {}` runs a script Ward cannot see into; run its commands directly",
                text
            ));
        }
        unsure(format!("`{shell}` reading commands from its input"))
    }

    /// The next token, running what substitutions in it contain.
    fn token(
        &mut self,
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<Token, Unsure> {
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('\\') if self.peek_at(1) == Some('\n') => self.pos += 2,
                Some('#') => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(c) = self.peek() else {
            return Ok(Token::End);
        };
        match c {
            '\n' => {
                self.pos += 1;
                self.read_heredocs()?;
                return Ok(Token::Op("\n"));
            }
            ';' => {
                if self.eat(";;") || self.eat(";&") {
                    return unsure("`case` branches are not judged");
                }
                self.pos += 1;
                return Ok(Token::Op(";"));
            }
            '&' => {
                if self.eat("&&") {
                    return Ok(Token::Op("&&"));
                }
                if self.peek_at(1) == Some('>') {
                    self.pos += 2;
                    self.eat(">");
                    return self.redirect_target(TouchKind::Write, cwds, touches, depth);
                }
                self.pos += 1;
                return Ok(Token::Op("&"));
            }
            '|' => {
                if self.eat("||") {
                    return Ok(Token::Op("||"));
                }
                if self.eat("|&") {
                    return Ok(Token::Op("|&"));
                }
                self.pos += 1;
                return Ok(Token::Op("|"));
            }
            '(' => {
                if self.peek_at(1) == Some('(') {
                    return unsure("`((` arithmetic is not judged");
                }
                self.pos += 1;
                return Ok(Token::Op("("));
            }
            ')' => {
                self.pos += 1;
                return Ok(Token::Op(")"));
            }
            '<' | '>' => return self.redirection(cwds, touches, depth),
            _ => {}
        }
        // A file descriptor number right before a redirection: `2>`.
        let digits = self.chars[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 && matches!(self.peek_at(digits), Some('<' | '>')) {
            self.pos += digits;
            return self.redirection(cwds, touches, depth);
        }
        let word = self.word(cwds, touches, depth)?;
        Ok(Token::Word(word))
    }

    /// A redirection operator at `pos` and its target.
    fn redirection(
        &mut self,
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<Token, Unsure> {
        if self.eat("<<<") {
            // A here-string: the word is data (its substitutions still run).
            self.skip_blanks();
            self.word(cwds, touches, depth)?;
            return Ok(Token::Redirect(None));
        }
        if self.eat("<<") {
            let strip_tabs = self.eat("-");
            self.skip_blanks();
            let word = self.word(cwds, touches, depth)?;
            if word.dynamic.is_some() || word.text.is_empty() {
                return unsure("a here-document delimiter Ward cannot read");
            }
            self.heredocs.push(Heredoc {
                delimiter: word.text,
                strip_tabs,
                expands: !word.quoted,
            });
            return Ok(Token::Redirect(None));
        }
        if self.peek_at(1) == Some('(') {
            return unsure("process substitution `<(…)`/`>(…)` is not judged");
        }
        if self.eat("<>") {
            return self.redirect_target(TouchKind::Write, cwds, touches, depth);
        }
        if self.eat("<&") || self.eat(">&") {
            // `2>&1`, `>&-`: a descriptor, not a file; `>&file` is `&>file`.
            let start = self.pos;
            let digits = self.chars[self.pos..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            self.pos += digits;
            if digits > 0 || self.eat("-") {
                self.eat("-");
                if self
                    .peek()
                    .is_none_or(|c| c.is_whitespace() || ";&|()<>".contains(c))
                {
                    return Ok(Token::Redirect(None));
                }
            }
            self.pos = start;
            return self.redirect_target(TouchKind::Write, cwds, touches, depth);
        }
        if self.eat("<") {
            return self.redirect_target(TouchKind::Read, cwds, touches, depth);
        }
        if self.eat(">>") || self.eat(">|") || self.eat(">") {
            return self.redirect_target(TouchKind::Write, cwds, touches, depth);
        }
        unsure("a redirection Ward does not know")
    }

    fn redirect_target(
        &mut self,
        kind: TouchKind,
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<Token, Unsure> {
        self.skip_blanks();
        if self.peek().is_none_or(|c| "\n;&|()<>".contains(c)) {
            return unsure("a redirection without a target");
        }
        let word = self.word(cwds, touches, depth)?;
        Ok(Token::Redirect(Some((kind, word))))
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
    }

    /// After a newline: the bodies of the here-documents of that line.
    fn read_heredocs(&mut self) -> Result<(), Unsure> {
        for doc in std::mem::take(&mut self.heredocs) {
            loop {
                if self.pos >= self.chars.len() {
                    return unsure(format!(
                        "the here-document ends without its `{}` line",
                        doc.delimiter
                    ));
                }
                let end = self.chars[self.pos..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(self.chars.len(), |at| self.pos + at);
                let line: String = self.chars[self.pos..end].iter().collect();
                self.pos = (end + 1).min(self.chars.len());
                let line = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line == doc.delimiter {
                    break;
                }
                if doc.expands && (line.contains("$(") || line.contains('`')) {
                    return unsure(
                        "a here-document that runs commands (`$(…)` or backticks in an unquoted one)",
                    );
                }
            }
        }
        Ok(())
    }

    /// One word: quotes removed, substitutions run (their commands added
    /// to `touches`) and marked dynamic.
    fn word(
        &mut self,
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<Word, Unsure> {
        let mut word = Word::default();
        let start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>' => break,
                '\\' => {
                    match self.peek_at(1) {
                        Some('\n') => {}
                        Some(next) => {
                            word.text.push(next);
                            word.quoted = true;
                        }
                        None => return unsure("a command line ending in `\\`"),
                    }
                    self.pos += 2;
                }
                '\'' => {
                    self.pos += 1;
                    word.quoted = true;
                    loop {
                        match self.peek() {
                            None => return unsure("an unterminated `'` quote"),
                            Some('\'') => {
                                self.pos += 1;
                                break;
                            }
                            Some(c) => {
                                word.text.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                }
                '"' => {
                    self.pos += 1;
                    word.quoted = true;
                    loop {
                        match self.peek() {
                            None => return unsure("an unterminated `\"` quote"),
                            Some('"') => {
                                self.pos += 1;
                                break;
                            }
                            Some('\\') => {
                                match self.peek_at(1) {
                                    Some('\n') => {}
                                    Some(next @ ('$' | '`' | '"' | '\\')) => word.text.push(next),
                                    Some(next) => {
                                        word.text.push('\\');
                                        word.text.push(next);
                                    }
                                    None => return unsure("an unterminated `\"` quote"),
                                }
                                self.pos += 2;
                            }
                            Some('$' | '`') => self.dollar(&mut word, cwds, touches, depth)?,
                            Some(c) => {
                                word.text.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                }
                '$' | '`' => self.dollar(&mut word, cwds, touches, depth)?,
                '*' | '?' | '[' => {
                    word.dynamic.get_or_insert("a glob");
                    word.text.push(c);
                    self.pos += 1;
                }
                '{' if self.chars[self.pos..]
                    .iter()
                    .take_while(|c| !c.is_whitespace())
                    .any(|&c| c == ',' || c == '.') =>
                {
                    word.dynamic.get_or_insert("a brace expansion");
                    word.text.push(c);
                    self.pos += 1;
                }
                '~' if self.pos == start => {
                    self.pos += 1;
                    let user_len = self.chars[self.pos..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                        .count();
                    let ends = self
                        .peek_at(user_len)
                        .is_none_or(|c| c == '/' || c.is_whitespace() || ";&|()<>".contains(c));
                    match (&self.home, user_len, ends) {
                        (Some(home), 0, true) => word.text.push_str(home),
                        (None, 0, true) => {
                            word.dynamic
                                .get_or_insert("`~` without a known home directory");
                            word.text.push('~');
                        }
                        (_, _, true) => {
                            word.dynamic.get_or_insert("`~user`");
                            word.text.push('~');
                        }
                        _ => word.text.push('~'),
                    }
                }
                c => {
                    word.text.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(word)
    }

    /// `$…` or a backtick at `pos`: a substitution's commands are added to
    /// `touches`; the word's value becomes unknowable.
    fn dollar(
        &mut self,
        word: &mut Word,
        cwds: &[String],
        touches: &mut Vec<Touch>,
        depth: usize,
    ) -> Result<(), Unsure> {
        if self.eat("`") {
            let mut text = String::new();
            loop {
                match self.peek() {
                    None => return unsure("an unterminated backtick"),
                    Some('`') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') if matches!(self.peek_at(1), Some('`' | '\\' | '$')) => {
                        text.extend(self.peek_at(1));
                        self.pos += 2;
                    }
                    Some(c) => {
                        text.push(c);
                        self.pos += 1;
                    }
                }
            }
            let mut inner = Parser {
                chars: text.chars().collect(),
                pos: 0,
                home: self.home.clone(),
                heredocs: Vec::new(),
            };
            let mut cwds = cwds.to_vec();
            inner.list(&mut cwds, touches, depth + 1, false)?;
            word.dynamic.get_or_insert("a command substitution");
            return Ok(());
        }
        self.pos += 1;
        match self.peek() {
            Some('(') if self.peek_at(1) == Some('(') => unsure("`$((` arithmetic is not judged"),
            Some('(') => {
                self.pos += 1;
                let mut cwds = cwds.to_vec();
                self.list(&mut cwds, touches, depth + 1, true)?;
                word.dynamic.get_or_insert("a command substitution");
                Ok(())
            }
            Some('{') => {
                let close = self.chars[self.pos..].iter().position(|&c| c == '}');
                let Some(close) = close else {
                    return unsure("an unterminated `${`");
                };
                let inside: String = self.chars[self.pos + 1..self.pos + close].iter().collect();
                if inside.contains("$(") || inside.contains('`') {
                    return unsure("a command substitution inside `${…}`");
                }
                self.pos += close + 1;
                word.dynamic.get_or_insert("a variable");
                Ok(())
            }
            Some(c) if c.is_ascii_alphanumeric() || "_@*#?$!-".contains(c) => {
                self.pos += 1;
                if c.is_ascii_alphabetic() || c == '_' {
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.pos += 1;
                    }
                }
                word.dynamic.get_or_insert("a variable");
                Ok(())
            }
            Some('\'') => unsure("`$'…'` quoting is not judged"),
            Some('"') => unsure("`$\"…\"` quoting is not judged"),
            _ => {
                word.text.push('$');
                Ok(())
            }
        }
    }
}

/// Adds a redirection's file, per directory for a relative one.
fn redirect(
    kind: TouchKind,
    target: &Word,
    cwds: &[String],
    touches: &mut Vec<Touch>,
) -> Result<(), Unsure> {
    if let Some(why) = target.dynamic {
        return unsure(format!(
            "a redirection to a file that is not written out ({why})"
        ));
    }
    if matches!(
        target.text.as_str(),
        "/dev/null" | "/dev/stdout" | "/dev/stderr"
    ) {
        return Ok(());
    }
    for cwd in cwds {
        push(touches, kind, &target.text, cwd);
        if target.text.starts_with('/') {
            break;
        }
    }
    Ok(())
}

fn push(touches: &mut Vec<Touch>, kind: TouchKind, target: &str, cwd: &str) {
    let touch = Touch {
        kind,
        target: target.to_owned(),
        cwd: cwd.to_owned(),
    };
    if !touches.contains(&touch) {
        touches.push(touch);
    }
}

/// The files a well-known file utility reads, writes or deletes, from its
/// operands (options skipped; an operand Ward cannot read is unsure).
/// Other programs' arguments are theirs: the `exec` scope decides.
fn files(
    program: &str,
    args: &[Word],
    cwds: &[String],
    touches: &mut Vec<Touch>,
) -> Result<(), Unsure> {
    let (valued, first, others, last): (
        &[&str],
        Option<TouchKind>,
        Option<TouchKind>,
        Option<TouchKind>,
    ) = match program {
        "cat" | "less" | "more" | "base64" | "xxd" | "od" | "hexdump" | "strings" | "wc" | "nl"
        | "tac" | "md5sum" | "sha1sum" | "sha256sum" | "sha512sum" | "file" | "stat" | "diff"
        | "cmp" | "sort" | "uniq" => (
            &["-o", "-k", "-t", "-w", "-n", "-c"],
            Some(TouchKind::Read),
            Some(TouchKind::Read),
            None,
        ),
        "head" | "tail" => (
            &["-n", "-c"],
            Some(TouchKind::Read),
            Some(TouchKind::Read),
            None,
        ),
        "grep" | "egrep" | "fgrep" | "rg" => {
            // The first operand is the pattern (unless `-e` gave it).
            let explicit = args.iter().any(|a| a.text == "-e" || a.text == "-f");
            (
                &[
                    "-e",
                    "-f",
                    "-m",
                    "-A",
                    "-B",
                    "-C",
                    "--include",
                    "--exclude",
                    "-g",
                    "-t",
                ],
                if explicit {
                    Some(TouchKind::Read)
                } else {
                    None
                },
                Some(TouchKind::Read),
                None,
            )
        }
        "touch" | "mkdir" | "tee" | "truncate" => (
            &["-m", "-s", "-d", "-r", "-t"],
            Some(TouchKind::Write),
            Some(TouchKind::Write),
            None,
        ),
        "chmod" | "chown" | "chgrp" => (&["--reference"], None, Some(TouchKind::Write), None),
        "cp" | "ln" | "install" | "rsync" => (
            &["-t", "-S", "-m", "-o", "-g"],
            Some(TouchKind::Read),
            Some(TouchKind::Read),
            Some(TouchKind::Write),
        ),
        "mv" => (
            &["-t", "-S"],
            Some(TouchKind::Delete),
            Some(TouchKind::Delete),
            Some(TouchKind::Write),
        ),
        "rm" | "rmdir" | "unlink" | "shred" => (
            &["-n", "-s"],
            Some(TouchKind::Delete),
            Some(TouchKind::Delete),
            None,
        ),
        "sed" => {
            let in_place = args
                .iter()
                .any(|a| a.text.starts_with("-i") || a.text.starts_with("--in-place"));
            let kind = if in_place {
                TouchKind::Write
            } else {
                TouchKind::Read
            };
            let explicit = args.iter().any(|a| a.text == "-e" || a.text == "-f");
            (
                &["-e", "-f", "-l"],
                if explicit { Some(kind) } else { None },
                Some(kind),
                None,
            )
        }
        _ => return Ok(()),
    };
    let mut operands = Vec::new();
    let mut index = 0;
    let mut options = true;
    while let Some(arg) = args.get(index) {
        index += 1;
        if options && arg.text == "--" && arg.dynamic.is_none() {
            options = false;
            continue;
        }
        if options && arg.text.starts_with('-') && arg.text.len() > 1 && arg.dynamic.is_none() {
            if valued.contains(&arg.text.as_str()) {
                index += 1;
            }
            continue;
        }
        operands.push(arg);
    }
    let count = operands.len();
    for (at, operand) in operands.into_iter().enumerate() {
        let kind = if at + 1 == count && count > 1 && last.is_some() {
            last
        } else if at == 0 {
            first
        } else {
            others
        };
        let Some(kind) = kind else {
            continue;
        };
        if let Some(why) = operand.dynamic {
            return unsure(format!(
                "`{program}` on a file that is not written out ({why}); name each file"
            ));
        }
        if operand.text == "-"
            || operand.text.starts_with("/dev/std")
            || operand.text == "/dev/null"
        {
            continue;
        }
        for cwd in cwds {
            push(touches, kind, &operand.text, cwd);
            if operand.text.starts_with('/') {
                break;
            }
        }
    }
    Ok(())
}

/// `cd`: the directories the shell may be in afterwards.
fn cd(args: &[Word], cwds: &mut Vec<String>, home: Option<&str>) -> Result<(), Unsure> {
    let args: Vec<&Word> = args
        .iter()
        .filter(|a| !matches!(a.text.as_str(), "-L" | "-P" | "--"))
        .collect();
    let target = match args.as_slice() {
        [] => match home {
            Some(home) => home.to_owned(),
            None => return unsure("`cd` to a home directory Ward does not know"),
        },
        [only] => {
            if let Some(why) = only.dynamic {
                return unsure(format!(
                    "`cd` to a directory that is not written out ({why})"
                ));
            }
            if only.text == "-" || only.text.starts_with('-') {
                return unsure("`cd -` and `cd` options: use a literal directory");
            }
            only.text.clone()
        }
        _ => return unsure("`cd` with more than one directory"),
    };
    let mut next = cwds.clone();
    for cwd in cwds.iter() {
        let joined = if target.starts_with('/') {
            target.clone()
        } else {
            format!("{}/{}", cwd.trim_end_matches('/'), target)
        };
        if !next.contains(&joined) {
            next.push(joined);
        }
    }
    if next.len() > MAX_CWDS {
        return unsure(format!(
            "more than {MAX_CWDS} possible working directories after `cd`"
        ));
    }
    *cwds = next;
    Ok(())
}

/// `NAME` of a `NAME=value` word.
fn assignment_name(word: &Word) -> Option<&str> {
    let (name, _) = word.text.split_once('=')?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    // `"A=b"` quoted before the `=` is a word, not an assignment; a quote
    // after it is part of the value.
    valid.then_some(name)
}

/// Refuses assignments that change which program or code runs.
fn check_assignment(name: &str) -> Result<(), Unsure> {
    let risky = matches!(
        name,
        "PATH"
            | "IFS"
            | "BASH_ENV"
            | "ENV"
            | "SHELLOPTS"
            | "BASHOPTS"
            | "CDPATH"
            | "PROMPT_COMMAND"
    ) || name.starts_with("LD_")
        || name.starts_with("DYLD_")
        || name.starts_with("BASH_FUNC_");
    if risky {
        return unsure(format!(
            "setting `{name}` changes which program or code runs"
        ));
    }
    Ok(())
}

/// For a program that runs its arguments as a command: where that command
/// starts in `args`; `None` for other programs.
fn wrapped_start(program: &str, args: &[Word]) -> Result<Option<usize>, Unsure> {
    // Options that take a value, per wrapper.
    let valued: &[&str] = match program {
        "env" => &["-u", "--unset", "-C", "--chdir"],
        "nice" => &["-n", "--adjustment"],
        "nohup" | "command" | "exec" | "time" | "setsid" => &[],
        "timeout" => &["-s", "--signal", "-k", "--kill-after"],
        "sudo" | "doas" => &[
            "-u", "--user", "-g", "--group", "-C", "-D", "--chdir", "-h", "--host", "-p",
            "--prompt", "-r", "-t",
        ],
        "xargs" => &[
            "-I",
            "-n",
            "-P",
            "-L",
            "-s",
            "-d",
            "-E",
            "-a",
            "--arg-file",
            "--delimiter",
            "--max-args",
            "--max-procs",
        ],
        "stdbuf" => &["-i", "-o", "-e"],
        "ionice" => &["-c", "-n", "-p"],
        "watch" => &["-n", "--interval", "-d"],
        "strace" | "ltrace" => &["-o", "-p", "-e", "-s", "-u", "-E"],
        "busybox" | "unbuffer" | "chrt" | "taskset" => &[],
        _ => return Ok(None),
    };
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        let text = arg.text.as_str();
        if arg.dynamic.is_some() {
            return unsure(format!("`{program}` with an argument Ward cannot read"));
        }
        if text == "--" {
            index += 1;
            break;
        }
        if program == "env" && (text == "-S" || text.starts_with("--split-string")) {
            return unsure("`env -S` splits a string Ward does not follow");
        }
        if program == "env" && assignment_name(arg).is_some() {
            check_assignment(text.split_once('=').map_or(text, |(n, _)| n))?;
            index += 1;
            continue;
        }
        if text.starts_with('-') && text.len() > 1 {
            index += if valued.contains(&text) { 2 } else { 1 };
            continue;
        }
        break;
    }
    if program == "timeout" {
        // The duration comes before the command.
        index += 1;
    }
    if index >= args.len() {
        // `env` alone prints the environment; `xargs` alone runs `echo`.
        return Ok(None);
    }
    Ok(Some(index))
}

/// Reserved words that start control flow.
const KEYWORDS: &[&str] = &[
    "if", "then", "elif", "else", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "select", "function", "{", "}", "[[", "]]", "!", "coproc",
];

/// Builtins that run code Ward cannot see.
const UNJUDGED: &[&str] = &[
    "eval", "source", ".", "alias", "trap", "builtin", "enable", "hash", "fc", "bind", "complete",
];

/// Builtins that run no program and touch no file (besides redirections,
/// judged separately).
const BUILTINS: &[&str] = &[
    ":", "true", "false", "echo", "printf", "test", "[", "pwd", "read", "exit", "return", "shift",
    "wait", "set", "unset", "shopt", "umask", "type", "getopts", "break", "continue",
];

/// Builtins that run their arguments as a command.
const SHELL_WRAPPERS: &[&str] = &["exec", "command", "time"];

/// Programs that read a command line from `-c`.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];
