//! Just enough Python to read an autoscalebot 2.1 settings module: the file is cut into
//! statements (strings, brackets, comments and line continuations followed as Python does),
//! and a top-level `NAME = value` whose value is a literal (numbers, strings, `True`, `False`,
//! `None`, lists, tuples, dicts, or an `os.environ`/`os.getenv` lookup of a variable) is read.
//! Every other statement is kept with its lines and why it is not a plain assignment.
//!
//! Written by hand rather than with a Python parser crate: `rustpython-parser` is archived
//! and brings a 2.3 MB generated grammar and a bignum library to compile for a few literals,
//! and `ruff_python_parser` is an internal crate of Ruff with no stable API that needs a
//! newer Rust than the workspace's. A module of settings needs a lexer and a small literal
//! parser. It evaluates nothing and must never be asked to run code.

/// A literal value, as Python would build it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Keys and values in the file's order.
    Dict(Vec<(Value, Value)>),
    /// `os.environ["NAME"]`, `os.environ.get("NAME"[, default])` or
    /// `os.getenv("NAME"[, default])`: read from the environment when Python runs.
    Env {
        variable: String,
        default: Option<Box<Value>>,
    },
}

/// One statement of the module: lines `first_line..=last_line` (from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub first_line: usize,
    pub last_line: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A top-level `name = literal`.
    Assign { name: String, value: Value },
    /// Anything else. `head` names it without its values (which may hold a secret): `import`,
    /// `MAX_DYNOS = …`, `print(…)`; `why` says what it is.
    Other { head: String, why: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Int(i64),
    Float(f64),
    /// A string literal; `plain` is false for f-strings and bytes, which are no setting's text.
    Str {
        text: String,
        plain: bool,
    },
    Op(String),
    /// A number Python has that a setting cannot hold (complex, too large).
    OtherNumber,
}

/// A token and the line it starts on.
#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    line: usize,
}

/// The statements of `source`, in order. A part that cannot be read (an unclosed string or
/// bracket) ends the list with one statement covering the rest of the file.
pub fn statements(source: &str) -> Vec<Statement> {
    let lines = logical_lines(source);
    let mut statements = Vec::new();
    for logical in lines {
        match logical {
            Logical::Tokens {
                tokens,
                indented,
                first_line,
                last_line,
            } => {
                let parts = split_semicolons(tokens);
                let count = parts.len();
                for (index, part) in parts.into_iter().enumerate() {
                    // A part's last token may be a string of several lines: the logical line's
                    // end is known, a token's is not.
                    let first = if index == 0 { first_line } else { part[0].line };
                    let last = if index + 1 == count {
                        last_line
                    } else {
                        part[part.len() - 1].line
                    };
                    statements.push(Statement {
                        first_line: first,
                        last_line: last,
                        kind: classify(&part, indented),
                    });
                }
            }
            Logical::Unreadable { first_line, why } => {
                let last_line = source.lines().count().max(first_line);
                statements.push(Statement {
                    first_line,
                    last_line,
                    kind: Kind::Other {
                        head: "the rest of the file".into(),
                        why,
                    },
                });
            }
        }
    }
    statements
}

enum Logical {
    Tokens {
        tokens: Vec<Spanned>,
        /// The line starts with spaces or tabs: it belongs to a block.
        indented: bool,
        first_line: usize,
        last_line: usize,
    },
    Unreadable {
        first_line: usize,
        why: String,
    },
}

/// Operators of two or three characters, longest first.
const OPERATORS: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "&=",
    "|=", "^=", "@=", "->", ":=", "**", "//", "<<", ">>",
];

/// Cuts the source into logical lines of tokens, as Python's tokenizer does.
fn logical_lines(source: &str) -> Vec<Logical> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut index = 0;
    let mut line = 1;
    let mut depth = 0usize;
    let mut current: Vec<Spanned> = Vec::new();
    let mut indented = false;
    let mut at_line_start = true;
    let mut first_line = 1;
    let flush = |current: &mut Vec<Spanned>,
                 out: &mut Vec<Logical>,
                 indented: bool,
                 first_line: usize,
                 line: usize| {
        if !current.is_empty() {
            out.push(Logical::Tokens {
                tokens: std::mem::take(current),
                indented,
                first_line,
                last_line: line,
            });
        }
    };
    while index < chars.len() {
        let c = chars[index];
        if at_line_start && depth == 0 && current.is_empty() {
            // Indentation of a line that holds code.
            let mut probe = index;
            while probe < chars.len() && matches!(chars[probe], ' ' | '\t' | '\x0c') {
                probe += 1;
            }
            let blank = probe >= chars.len() || matches!(chars[probe], '\n' | '\r' | '#');
            if !blank {
                indented = probe > index;
                first_line = line;
            }
            at_line_start = false;
            index = probe;
            continue;
        }
        match c {
            '\n' => {
                line += 1;
                index += 1;
                if depth == 0 {
                    flush(&mut current, &mut out, indented, first_line, line - 1);
                    at_line_start = true;
                }
            }
            '\r' | ' ' | '\t' | '\x0c' => index += 1,
            '#' => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            '\\' if chars.get(index + 1) == Some(&'\n') => {
                index += 2;
                line += 1;
            }
            '\\' if chars.get(index + 1) == Some(&'\r') && chars.get(index + 2) == Some(&'\n') => {
                index += 3;
                line += 1;
            }
            _ if c.is_ascii_digit()
                || (c == '.' && chars.get(index + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = index;
                while index < chars.len()
                    && (chars[index].is_ascii_alphanumeric()
                        || chars[index] == '_'
                        || chars[index] == '.'
                        || ((chars[index] == '+' || chars[index] == '-')
                            && matches!(chars[index - 1], 'e' | 'E')
                            && !is_hex_start(&chars[start..index])))
                {
                    index += 1;
                }
                let text: String = chars[start..index].iter().collect();
                current.push(Spanned {
                    token: number(&text),
                    line,
                });
            }
            _ if c.is_alphabetic() || c == '_' => {
                let start = index;
                while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_')
                {
                    index += 1;
                }
                let word: String = chars[start..index].iter().collect();
                let quote = chars.get(index).copied();
                let is_prefix = word.len() <= 2
                    && word
                        .chars()
                        .all(|p| matches!(p.to_ascii_lowercase(), 'r' | 'b' | 'u' | 'f'));
                if is_prefix && matches!(quote, Some('\'' | '"')) {
                    match string_token(&chars, index, &word, &mut line, &mut current) {
                        Ok(next) => index = next,
                        Err(unreadable) => {
                            out.push(unreadable);
                            return out;
                        }
                    }
                } else {
                    current.push(Spanned {
                        token: Token::Name(word),
                        line,
                    });
                }
            }
            '\'' | '"' => match string_token(&chars, index, "", &mut line, &mut current) {
                Ok(next) => index = next,
                Err(unreadable) => {
                    out.push(unreadable);
                    return out;
                }
            },
            _ => {
                let rest: String = chars[index..chars.len().min(index + 3)].iter().collect();
                let op = OPERATORS
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map_or_else(|| c.to_string(), |op| op.to_string());
                match op.as_str() {
                    "(" | "[" | "{" => depth += 1,
                    ")" | "]" | "}" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                index += op.chars().count();
                current.push(Spanned {
                    token: Token::Op(op),
                    line,
                });
            }
        }
    }
    if depth > 0 {
        out.push(Logical::Unreadable {
            first_line,
            why: "a bracket opened here is never closed".into(),
        });
        return out;
    }
    flush(&mut current, &mut out, indented, first_line, line);
    out
}

/// The string literal whose quote is at `index` (after `prefix`), added to `current`; the
/// index after it, or what ends the module there when it is never closed.
fn string_token(
    chars: &[char],
    index: usize,
    prefix: &str,
    line: &mut usize,
    current: &mut Vec<Spanned>,
) -> Result<usize, Logical> {
    let start_line = *line;
    match string(chars, index, prefix, line) {
        Ok((token, next)) => {
            current.push(Spanned {
                token,
                line: start_line,
            });
            Ok(next)
        }
        Err(why) => Err(Logical::Unreadable {
            first_line: start_line,
            why,
        }),
    }
}

fn is_hex_start(chars: &[char]) -> bool {
    chars.len() >= 2 && chars[0] == '0' && matches!(chars[1], 'x' | 'X')
}

/// A number literal: `1_000`, `0x1F`, `0o17`, `0b101`, `1.5`, `1e3`, `.5`; `j` or too large:
/// [`Token::OtherNumber`].
fn number(text: &str) -> Token {
    let digits = text.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let radix = |prefix: &str, radix: u32| {
        lower
            .strip_prefix(prefix)
            .map(|rest| i64::from_str_radix(rest, radix).ok())
    };
    let parsed = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2));
    if let Some(parsed) = parsed {
        return parsed.map_or(Token::OtherNumber, Token::Int);
    }
    if lower.ends_with('j') {
        return Token::OtherNumber;
    }
    if lower.contains(['.', 'e']) {
        return lower
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map_or(Token::OtherNumber, Token::Float);
    }
    // Python 3 refuses leading zeros in a decimal literal other than 0.
    if lower.len() > 1 && lower.starts_with('0') && lower.trim_start_matches('0').is_empty() {
        return Token::Int(0);
    }
    if lower.len() > 1 && lower.starts_with('0') {
        return Token::OtherNumber;
    }
    lower.parse::<i64>().map_or(Token::OtherNumber, Token::Int)
}

/// A string literal starting at `start` (its quote), with `prefix` before it; the token and
/// the index after its closing quote. `line` follows the newlines inside.
fn string(
    chars: &[char],
    start: usize,
    prefix: &str,
    line: &mut usize,
) -> Result<(Token, usize), String> {
    let prefix = prefix.to_ascii_lowercase();
    let raw = prefix.contains('r');
    let plain = !prefix.contains('f') && !prefix.contains('b');
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let opened_on = *line;
    let mut index = start + if triple { 3 } else { 1 };
    let mut text = String::new();
    loop {
        let Some(&c) = chars.get(index) else {
            return Err(format!(
                "a string opened on line {opened_on} is never closed"
            ));
        };
        if c == quote {
            if !triple {
                return Ok((Token::Str { text, plain }, index + 1));
            }
            if chars.get(index + 1) == Some(&quote) && chars.get(index + 2) == Some(&quote) {
                return Ok((Token::Str { text, plain }, index + 3));
            }
        }
        if c == '\n' {
            if !triple {
                return Err(format!(
                    "a string opened on line {opened_on} is not closed on its line"
                ));
            }
            *line += 1;
        }
        if c == '\\' && !raw {
            let Some(&next) = chars.get(index + 1) else {
                return Err(format!(
                    "a string opened on line {opened_on} is never closed"
                ));
            };
            index += 2;
            match next {
                '\n' => *line += 1,
                'n' => text.push('\n'),
                't' => text.push('\t'),
                'r' => text.push('\r'),
                '0'..='7' => {
                    let mut value = next.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.get(index).and_then(|d| d.to_digit(8)) {
                            Some(digit) => {
                                value = value * 8 + digit;
                                index += 1;
                            }
                            None => break,
                        }
                    }
                    text.push(char::from_u32(value).unwrap_or('\u{fffd}'));
                }
                'x' | 'u' | 'U' => {
                    let width = match next {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars[index..(index + width).min(chars.len())]
                        .iter()
                        .collect();
                    let value = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == width)
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            format!("a string on line {} has a bad \\{next} escape", *line)
                        })?;
                    text.push(value);
                    index += width;
                }
                'a' => text.push('\x07'),
                'b' => text.push('\x08'),
                'f' => text.push('\x0c'),
                'v' => text.push('\x0b'),
                '\\' | '\'' | '"' => text.push(next),
                other => {
                    // Python keeps an unknown escape as it is written.
                    text.push('\\');
                    text.push(other);
                }
            }
            continue;
        }
        if c == '\\' && raw && chars.get(index + 1).is_some() {
            // In a raw string a backslash still keeps the next quote from closing it.
            text.push(c);
            text.push(chars[index + 1]);
            if chars[index + 1] == '\n' {
                *line += 1;
            }
            index += 2;
            continue;
        }
        text.push(c);
        index += 1;
    }
}

fn split_semicolons(tokens: Vec<Spanned>) -> Vec<Vec<Spanned>> {
    let mut parts = vec![Vec::new()];
    let mut depth = 0usize;
    for spanned in tokens {
        match &spanned.token {
            Token::Op(op) if op == ";" && depth == 0 => {
                parts.push(Vec::new());
                continue;
            }
            Token::Op(op) if matches!(op.as_str(), "(" | "[" | "{") => depth += 1,
            Token::Op(op) if matches!(op.as_str(), ")" | "]" | "}") => {
                depth = depth.saturating_sub(1)
            }
            _ => {}
        }
        parts.last_mut().expect("one part at least").push(spanned);
    }
    parts.retain(|part| !part.is_empty());
    parts
}

const COMPOUND: &[&str] = &[
    "if", "elif", "else", "for", "while", "def", "class", "with", "try", "except", "finally",
    "async", "match", "case",
];

fn classify(tokens: &[Spanned], indented: bool) -> Kind {
    let head_name = match tokens.first().map(|t| &t.token) {
        Some(Token::Name(name)) => name.clone(),
        _ => String::new(),
    };
    let is_assignment = tokens.len() >= 2 && matches!(&tokens[1].token, Token::Op(op) if op == "=");
    let head = if is_assignment {
        format!("{head_name} = …")
    } else if head_name.is_empty() {
        "an expression".to_string()
    } else {
        format!("{head_name} …")
    };
    let other = |why: &str| Kind::Other {
        head: head.clone(),
        why: why.to_string(),
    };
    if indented {
        return other("inside a block (under an if, a for, a def, a class or a with): only top-level assignments carry over");
    }
    match head_name.as_str() {
        "import" | "from" => return other("an import: code, not a setting"),
        name if COMPOUND.contains(&name) && !is_assignment => {
            return Kind::Other {
                head: format!("{name} …"),
                why: format!(
                    "a{} {name} statement: code, not a setting",
                    if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "n"
                    } else {
                        ""
                    }
                ),
            }
        }
        _ => {}
    }
    if !is_assignment || head_name.is_empty() {
        let assigns = tokens.iter().any(|t| matches!(&t.token, Token::Op(op) if op.ends_with('=') && !matches!(op.as_str(), "==" | "!=" | "<=" | ">=")));
        return other(if assigns {
            "not a plain `NAME = value` assignment (several names, an attribute, an item, an annotation or an augmented assignment)"
        } else {
            "an expression or a statement, not an assignment"
        });
    }
    let mut parser = Parser {
        tokens: &tokens[2..],
        at: 0,
    };
    match parser.value() {
        Ok(value) if parser.at == parser.tokens.len() => Kind::Assign {
            name: head_name,
            value,
        },
        _ if chained(&tokens[2..]) => other("a chained assignment (A = B = …)"),
        Ok(_) if matches!(parser.peek(), Some(Token::Op(op)) if op == ",") => {
            other("a tuple without brackets: write it as a list")
        }
        _ => other("the value is not a plain literal: a name, a call, an operator or a comprehension is code that runs"),
    }
}

/// Whether an `=` follows outside brackets: `A = B = 1`.
fn chained(tokens: &[Spanned]) -> bool {
    let mut depth = 0usize;
    tokens.iter().any(|spanned| match &spanned.token {
        Token::Op(op) if matches!(op.as_str(), "(" | "[" | "{") => {
            depth += 1;
            false
        }
        Token::Op(op) if matches!(op.as_str(), ")" | "]" | "}") => {
            depth = depth.saturating_sub(1);
            false
        }
        Token::Op(op) => op == "=" && depth == 0,
        _ => false,
    })
}

/// A recursive descent over one value's tokens.
struct Parser<'a> {
    tokens: &'a [Spanned],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|t| &t.token)
    }

    fn next(&mut self) -> Option<&Token> {
        let token = self.tokens.get(self.at).map(|t| &t.token);
        self.at += 1;
        token
    }

    fn eat(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Token::Op(found)) if found == op) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Result<(), ()> {
        self.eat(op).then_some(()).ok_or(())
    }

    fn value(&mut self) -> Result<Value, ()> {
        match self.next().cloned() {
            Some(Token::Int(n)) => Ok(Value::Int(n)),
            Some(Token::Float(f)) => Ok(Value::Float(f)),
            Some(Token::Op(op)) if op == "-" || op == "+" => {
                let negative = op == "-";
                match self.next() {
                    Some(Token::Int(n)) if negative => n.checked_neg().map(Value::Int).ok_or(()),
                    Some(Token::Int(n)) => Ok(Value::Int(*n)),
                    Some(Token::Float(f)) => Ok(Value::Float(if negative { -f } else { *f })),
                    _ => Err(()),
                }
            }
            Some(Token::Str { text, plain }) => {
                if !plain {
                    return Err(());
                }
                // Adjacent strings are one: "a" "b" is "ab".
                let mut joined = text;
                while let Some(Token::Str { text, plain }) = self.peek().cloned() {
                    if !plain {
                        return Err(());
                    }
                    joined.push_str(&text);
                    self.at += 1;
                }
                Ok(Value::Str(joined))
            }
            Some(Token::Name(name)) => match name.as_str() {
                "True" => Ok(Value::Bool(true)),
                "False" => Ok(Value::Bool(false)),
                "None" => Ok(Value::None),
                "os" => self.environment(),
                _ => Err(()),
            },
            Some(Token::Op(op)) if op == "[" => Ok(Value::List(self.items("]")?.0)),
            Some(Token::Op(op)) if op == "(" => {
                let (items, trailing_comma) = self.items(")")?;
                if items.len() == 1 && !trailing_comma {
                    Ok(items.into_iter().next().expect("one item"))
                } else {
                    Ok(Value::Tuple(items))
                }
            }
            Some(Token::Op(op)) if op == "{" => self.dict(),
            _ => Err(()),
        }
    }

    /// Values up to `close`, separated by commas; whether a comma came last.
    fn items(&mut self, close: &str) -> Result<(Vec<Value>, bool), ()> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.value()?);
            trailing = self.eat(",");
            if !trailing {
                self.expect(close)?;
                return Ok((items, false));
            }
        }
    }

    fn dict(&mut self) -> Result<Value, ()> {
        let mut entries = Vec::new();
        loop {
            if self.eat("}") {
                return Ok(Value::Dict(entries));
            }
            let key = self.value()?;
            // `{1, 2}` is a set, which no setting takes.
            self.expect(":")?;
            let value = self.value()?;
            entries.push((key, value));
            if !self.eat(",") {
                self.expect("}")?;
                return Ok(Value::Dict(entries));
            }
        }
    }

    /// After `os`: `.environ["NAME"]`, `.environ.get("NAME"[, default])` or
    /// `.getenv("NAME"[, default])`.
    fn environment(&mut self) -> Result<Value, ()> {
        self.expect(".")?;
        let call = match self.next() {
            Some(Token::Name(name)) if name == "getenv" => true,
            Some(Token::Name(name)) if name == "environ" => {
                if self.eat("[") {
                    let variable = self.variable()?;
                    self.expect("]")?;
                    return Ok(Value::Env {
                        variable,
                        default: None,
                    });
                }
                self.expect(".")?;
                match self.next() {
                    Some(Token::Name(name)) if name == "get" => true,
                    _ => return Err(()),
                }
            }
            _ => return Err(()),
        };
        debug_assert!(call);
        self.expect("(")?;
        let variable = self.variable()?;
        let default = if self.eat(",") && !matches!(self.peek(), Some(Token::Op(op)) if op == ")") {
            Some(Box::new(self.value()?))
        } else {
            None
        };
        self.eat(",");
        self.expect(")")?;
        Ok(Value::Env { variable, default })
    }

    fn variable(&mut self) -> Result<String, ()> {
        match self.next() {
            Some(Token::Str { text, plain: true }) => Ok(text.clone()),
            _ => Err(()),
        }
    }
}
