//! `client describe` and `client call`: a typed server's protocol read from
//! the server itself (reflection, spec 3.13.1), then any of its calls made
//! from JSON, as grpcurl does for gRPC. Nothing about the protocol needs to
//! be known beforehand: the schema says its name, versions and encodings,
//! the handshake negotiates them, and the schema turns JSON into the wire's
//! bytes and the answer back into JSON.

use anyhow::{Context, bail};
use clap::Args as ClapArgs;
use rust_tcp::protocol::v2::{AppProtocol, Encoding};
use rust_tcp::typed::{Answer, CallKind, CallSchema, Schema, Shape, Type};
use rust_tcp::{CallOptions, Client};
use std::io::Write;
use std::time::Duration;

use crate::{ConnArgs, client_config};

#[derive(Debug, ClapArgs)]
pub(crate) struct DescribeArgs {
    /// Print the schema as JSON (what `client schema check` and
    /// `python -m rust_tcp generate` read) instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, ClapArgs)]
pub(crate) struct CallArgs {
    /// The call, by the name `client describe` lists (`get`, `submit`).
    method: String,

    /// Its arguments as a JSON object by name (`'{"key": "k"}'`); leave it
    /// out for a call without arguments. `-` reads it from standard input.
    json: Option<String>,

    /// Speak this encoding instead of the protocol's first: msgpack or
    /// postcard.
    #[arg(long, value_parser = ["msgpack", "postcard"])]
    encoding: Option<String>,

    /// Give the call this many milliseconds (the server stops its work
    /// when they pass, and so do we).
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,

    /// How many items of a streaming call the server may send ahead of
    /// our printing.
    #[arg(long, value_name = "N", default_value_t = 64)]
    window: u32,
}

/// Connects without a protocol and asks for the schema.
async fn fetch_schema(conn: &ConnArgs) -> anyhow::Result<Schema> {
    let client = Client::connect_with(&conn.addr, client_config(conn)?).await?;
    let schema = Schema::fetch(&client)
        .await
        .with_context(|| format!("{} did not describe itself", conn.addr));
    let _ = client.close().await;
    schema
}

pub(crate) async fn run_describe(conn: &ConnArgs, args: &DescribeArgs) -> anyhow::Result<()> {
    let schema = fetch_schema(conn).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", schema.to_json())?;
        return Ok(());
    }
    let [low, high] = schema.versions;
    let versions = if low == high {
        low.to_string()
    } else {
        format!("{low}-{high}")
    };
    writeln!(
        out,
        "{} {versions} ({})",
        schema.protocol,
        schema.encodings.join(", ")
    )?;
    writeln!(out, "calls:")?;
    for call in &schema.calls {
        writeln!(out, "  {}", signature(call, &schema.response))?;
    }
    let tops = [
        ("error", &schema.error),
        ("event", &schema.event),
        ("item", &schema.item),
    ];
    for (what, ty) in tops {
        if *ty != Type::Unit {
            writeln!(out, "{what}: {}", ty)?;
        }
    }
    writeln!(out, "types:")?;
    let skip = [&schema.request, &schema.message, &schema.response];
    for (name, t) in &schema.types {
        // The request, message and response enums are the calls above.
        let is_top = skip.iter().any(|s| **s == Type::Named(name.clone()));
        if is_top && schema.calls.iter().any(|c| c.returns.is_some()) {
            continue;
        }
        writeln!(
            out,
            "  {}{}",
            shape_line(name, &t.shape),
            since(t.since, low)
        )?;
    }
    Ok(())
}

fn since(version: u16, first: u16) -> String {
    if version > first {
        format!("  (since {version})")
    } else {
        String::new()
    }
}

/// `submit(job: Job) -> u64`, `watch(id: u64) -> stream of State (since 2)`;
/// a request of an enum protocol answers with the whole `response`.
fn signature(call: &CallSchema, response: &Type) -> String {
    let args: Vec<_> = call
        .args
        .iter()
        .map(|a| format!("{}: {}", a.name, a.ty))
        .collect();
    let returns = match (&call.kind, &call.returns) {
        (CallKind::OneWay, _) => " (one-way)".to_owned(),
        (CallKind::Streaming, Some(t)) if call.client_stream => {
            format!(" -> stream of {t} (the client streams too)")
        }
        (CallKind::Streaming, Some(t)) => format!(" -> stream of {t}"),
        (_, Some(t)) => format!(" -> {}", t),
        (_, None) => format!(" -> {}", response),
    };
    let since = if call.since > 1 {
        format!("  (since {})", call.since)
    } else {
        String::new()
    };
    format!("{}({}){returns}{since}", call.name, args.join(", "))
}

fn fields_text(fields: &[rust_tcp::typed::Field]) -> String {
    fields
        .iter()
        .map(|f| {
            let optional = if f.default { "?" } else { "" };
            format!("{}{optional}: {}", f.name, f.ty)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape_line(name: &str, shape: &Shape) -> String {
    match shape {
        Shape::Unit => format!("struct {name}"),
        Shape::Newtype(t) => format!("struct {name}({})", t),
        Shape::Tuple(ts) => format!(
            "struct {name}({})",
            ts.iter()
                .map(Type::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Shape::Struct(fields) => format!("struct {name} {{ {} }}", fields_text(fields)),
        Shape::Enum(variants) => {
            let vs: Vec<_> = variants
                .iter()
                .map(|v| match &v.shape {
                    Shape::Unit => v.name.clone(),
                    Shape::Newtype(t) => format!("{}({})", v.name, t),
                    Shape::Tuple(ts) => format!(
                        "{}({})",
                        v.name,
                        ts.iter()
                            .map(Type::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Shape::Struct(fields) => format!("{} {{ {} }}", v.name, fields_text(fields)),
                    _ => v.name.clone(),
                })
                .collect();
            format!("enum {name} {{ {} }}", vs.join(", "))
        }
        _ => format!("{name}: {shape:?}"),
    }
}

/// What `client call` ended with, for its exit status.
pub(crate) enum Called {
    /// The call succeeded; its answer is printed.
    Answered,
    /// The server answered with the protocol's error (printed as JSON on
    /// standard output, said on standard error): exit status 1.
    ProtocolError,
}

pub(crate) async fn run_call(conn: &ConnArgs, args: &CallArgs) -> anyhow::Result<Called> {
    // The arguments are read and parsed first: bad JSON sends nothing.
    let text = match args.json.as_deref() {
        Some("-") => std::io::read_to_string(std::io::stdin()).context("reading the arguments")?,
        Some(text) => text.to_owned(),
        None => "null".to_owned(),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).context("the arguments are not JSON")?;
    let schema = fetch_schema(conn).await?;
    let Some(call) = schema.call(&args.method) else {
        let names: Vec<_> = schema.calls.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "{} has no call `{}`; it has: {}",
            schema.protocol,
            args.method,
            names.join(", ")
        );
    };
    if call.client_stream {
        bail!(
            "`{}` streams items from the client too, which the command line cannot send yet; call it from a program",
            call.name
        );
    }
    let encodings: Vec<Encoding> = match &args.encoding {
        Some(e) => vec![encoding(e)],
        None => schema
            .encodings
            .iter()
            .filter_map(|e| match e.as_str() {
                "msgpack" => Some(Encoding::MessagePack),
                "postcard" => Some(Encoding::Postcard),
                _ => None,
            })
            .collect(),
    };
    // The arguments checked against the schema before connecting again.
    for e in &encodings {
        schema.encode_call(call, &json, *e)?;
    }
    let [low, high] = schema.versions;
    let protocol = AppProtocol::new(schema.protocol.clone(), low..=high).encodings(encodings);
    let config = client_config(conn)?.app_protocol(Some(protocol));
    let client = Client::connect_with(&conn.addr, config).await?;
    let chosen = client
        .app_protocol()
        .context("the server chose no application protocol")?;
    let payload = schema.encode_call(call, &json, chosen.encoding)?;
    let mut options = CallOptions::new();
    if let Some(ms) = args.deadline_ms {
        options = options.deadline(Some(Duration::from_millis(ms)));
    }
    let mut out = std::io::stdout().lock();
    let answer = match call.kind {
        CallKind::OneWay => {
            client.send_binary(payload).await?;
            // The close handshake: the server has the message once it ends.
            client.close().await?;
            eprintln!("sent `{}` (one-way: no answer)", call.name);
            return Ok(Called::Answered);
        }
        CallKind::Unary => client.call(payload, options).await?,
        CallKind::Streaming => {
            let mut stream = client
                .open_call(payload, options.server_stream(args.window))
                .await?;
            while let Some(item) = stream.next_item().await? {
                let value = schema.decode_value(&schema.item, &item, chosen.encoding)?;
                // A closed pipe (`| head -1`) ends the printing, not in a panic.
                if writeln!(out, "{value}").is_err() {
                    return Ok(Called::Answered);
                }
            }
            stream.finish().await?
        }
        other => bail!(
            "`{}` is a {other:?} call, which this client cannot make",
            call.name
        ),
    };
    let outcome = match schema.decode_answer(call, &answer, chosen.encoding)? {
        Answer::Ok(value) => {
            if call.kind == CallKind::Unary {
                let _ = writeln!(out, "{value}");
            }
            Called::Answered
        }
        Answer::Err(error) => {
            let _ = writeln!(out, "{error}");
            eprintln!(
                "error: `{}` answered with the protocol's error: {error}",
                call.name
            );
            Called::ProtocolError
        }
    };
    client.close().await?;
    Ok(outcome)
}

fn encoding(name: &str) -> Encoding {
    match name {
        "postcard" => Encoding::Postcard,
        _ => Encoding::MessagePack,
    }
}
