//! The service as the macro understands it: its protocol's name and
//! versions, its calls (unary, streaming, one-way), and the one error and
//! item type they share. Everything the trait says that cannot be served
//! is refused here, with the span of what to change.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, Expr, FnArg, GenericArgument, Ident, ItemTrait, LitInt, LitStr, Pat,
    PathArguments, ReturnType, TraitItem, Type, Visibility,
};

/// Names the generated client and server trait use for their own methods:
/// a call may not take them.
const RESERVED: &[&str] = &[
    "connect",
    "typed",
    "events",
    "with_options",
    "close",
    "from",
    "on_close",
];

/// How a call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One response (or the protocol's error).
    Unary,
    /// A stream of items (or the protocol's error instead of one).
    Streaming,
    /// Nothing: a one-way message.
    OneWay,
}

/// One argument of a call.
pub struct Arg {
    pub ident: Ident,
    pub ty: Type,
}

/// One `async fn` of the trait.
pub struct Method {
    /// The `Stream<T>` types it names, as written.
    pub stream_types: Vec<Type>,
    pub ident: Ident,
    /// Its doc comments, carried to every item generated for it.
    pub docs: Vec<Attribute>,
    pub kind: Kind,
    /// The request's fields (the client's stream is not one of them).
    pub args: Vec<Arg>,
    /// The client's stream: its argument's name and position among all.
    pub input: Option<(Ident, usize)>,
    /// What a unary call answers on success (`()` for nothing).
    pub output: Type,
    /// The call answers `Result<_, Error>`.
    pub fallible: bool,
    /// The protocol version that added the call (`#[since(2)]`); the
    /// first of the protocol's versions when unsaid.
    pub since: Option<u16>,
}

/// The whole service.
pub struct Service {
    pub vis: Visibility,
    pub ident: Ident,
    pub docs: Vec<Attribute>,
    /// The protocol's name in the handshake.
    pub name: String,
    /// The versions, as the attribute wrote them (`1..=2`).
    pub versions: Expr,
    pub event: Type,
    pub error: Type,
    pub item: Type,
    pub methods: Vec<Method>,
    /// Every `Stream<T>` as the trait wrote it: named again in the output
    /// so the user's `use ...::Stream` is not reported unused.
    pub stream_types: Vec<Type>,
}

impl Service {
    /// Reads `#[service(args)] trait ...`.
    pub fn parse(args: TokenStream, input: TokenStream) -> syn::Result<Service> {
        let item: ItemTrait = syn::parse2(input).map_err(|e| {
            Error::new(
                e.span(),
                "#[rust_tcp::service] goes on a trait of `async fn`s, one per call: \
                 `pub trait Kv { async fn get(key: String) -> Option<String>; }`",
            )
        })?;
        let mut name = None;
        let mut versions = None;
        let mut event = None;
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                check_name(&lit)?;
                name = Some(lit.value());
            } else if meta.path.is_ident("versions") {
                versions = Some(meta.value()?.parse::<Expr>()?);
            } else if meta.path.is_ident("event") {
                event = Some(meta.value()?.parse::<Type>()?);
            } else {
                return Err(meta.error(
                    "unknown argument: #[rust_tcp::service] takes `name = \"kv\"`, \
                     `versions = 1..=2` and `event = YourEvent`",
                ));
            }
            Ok(())
        });
        syn::parse::Parser::parse2(parser, args)?;

        if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
            return Err(Error::new(
                item.generics.span(),
                "a service trait takes no generic parameters: a protocol's types are concrete",
            ));
        }
        if let Some(bound) = item.supertraits.first() {
            return Err(Error::new(
                bound.span(),
                "a service trait has no supertraits: the macro adds `Send + Sync + 'static`",
            ));
        }
        let ident = item.ident.clone();
        let name =
            name.unwrap_or_else(|| heck::ToSnakeCase::to_snake_case(ident.to_string().as_str()));
        let versions = match versions {
            Some(v) => v,
            None => syn::parse_quote!(1..=1),
        };
        let event = event.unwrap_or_else(|| syn::parse_quote!(()));

        let mut methods = Vec::new();
        for entry in &item.items {
            let TraitItem::Fn(f) = entry else {
                return Err(Error::new(
                    entry.span(),
                    "a service trait holds only `async fn`s, one per call: move this out of it",
                ));
            };
            methods.push(Method::parse(f)?);
        }
        if methods.is_empty() {
            return Err(Error::new(
                ident.span(),
                "a service needs at least one call: add an `async fn`",
            ));
        }
        let error = shared_type(&methods, "error", |m| m.1.as_ref())?;
        let item_type = shared_type(&methods, "item", |m| m.2.as_ref())?;
        Ok(Service {
            vis: item.vis.clone(),
            ident,
            docs: docs(&item.attrs),
            name,
            versions,
            event,
            error: error.unwrap_or_else(|| syn::parse_quote!(())),
            item: item_type.unwrap_or_else(|| syn::parse_quote!(())),
            stream_types: methods
                .iter()
                .flat_map(|(m, _, _)| m.stream_types.iter().cloned())
                .collect(),
            methods: methods.into_iter().map(|(m, _, _)| m).collect(),
        })
    }
}

/// What `parse` keeps of each method until the shared types are found:
/// the method, its error type and its item type, if any.
type Parsed = (Method, Option<Type>, Option<Type>);

/// The one type every method that names one agrees on (the protocol has
/// one error type and one item type), or an error naming two that differ.
fn shared_type(
    methods: &[Parsed],
    what: &str,
    get: impl Fn(&Parsed) -> Option<&Type>,
) -> syn::Result<Option<Type>> {
    let mut found: Option<(&Ident, &Type)> = None;
    for m in methods {
        let Some(ty) = get(m) else { continue };
        match found {
            None => found = Some((&m.0.ident, ty)),
            Some((first, seen)) if !same_type(seen, ty) => {
                let hint = if what == "error" {
                    "every call of a protocol fails with one error type"
                } else {
                    "every stream of a protocol carries one item type (an enum, if they differ)"
                };
                return Err(Error::new(
                    ty.span(),
                    format!(
                        "{hint}: `{first}` uses `{}`, `{}` uses `{}`",
                        shown(seen),
                        m.0.ident,
                        shown(ty)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(found.map(|(_, ty)| ty.clone()))
}

/// A type as a user wrote it (`std::io::Error`, not `std :: io :: Error`).
fn shown(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (spaced, tight) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

fn same_type(a: &Type, b: &Type) -> bool {
    a.to_token_stream().to_string() == b.to_token_stream().to_string()
}

impl Method {
    fn parse(f: &syn::TraitItemFn) -> syn::Result<Parsed> {
        let sig = &f.sig;
        let ident = sig.ident.clone();
        if sig.asyncness.is_none() {
            return Err(Error::new(
                sig.fn_token.span(),
                format!("make `{ident}` an `async fn`: every call is answered asynchronously"),
            ));
        }
        if let Some(body) = &f.default {
            return Err(Error::new(
                body.span(),
                format!("give `{ident}`'s body in your `impl` of the trait, not here"),
            ));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            return Err(Error::new(
                sig.generics.span(),
                format!("`{ident}` takes no generic parameters: a call's types are concrete"),
            ));
        }
        if RESERVED.contains(&ident.to_string().as_str()) {
            return Err(Error::new(
                ident.span(),
                format!("`{ident}` is a method of the generated client: name the call otherwise"),
            ));
        }
        let mut oneway = false;
        let mut since = None;
        for attr in &f.attrs {
            if attr.path().is_ident("oneway") {
                attr.meta.require_path_only()?;
                oneway = true;
            } else if attr.path().is_ident("since") {
                let lit: LitInt = attr.parse_args()?;
                since = Some(lit.base10_parse::<u16>()?);
            } else if !attr.path().is_ident("doc") {
                return Err(Error::new(
                    attr.span(),
                    "a call takes `#[oneway]`, `#[since(N)]` and doc comments, nothing else",
                ));
            }
        }

        let mut args = Vec::new();
        let mut stream_types = Vec::new();
        let mut input = None;
        let mut item = None;
        for (position, arg) in sig.inputs.iter().enumerate() {
            let typed = match arg {
                FnArg::Receiver(r) => {
                    return Err(Error::new(
                        r.span(),
                        format!(
                            "remove `self` from `{ident}`: the generated trait adds `&self` \
                             and the call's context"
                        ),
                    ));
                }
                FnArg::Typed(t) => t,
            };
            let Pat::Ident(pat) = &*typed.pat else {
                return Err(Error::new(
                    typed.pat.span(),
                    "name each argument (`key: String`): the names are the request's fields",
                ));
            };
            let arg_ident = pat.ident.clone();
            if let Some(inner) = generic_of(&typed.ty, "Stream", 1) {
                if input.is_some() {
                    return Err(Error::new(
                        typed.ty.span(),
                        format!("`{ident}` takes at most one `Stream<T>`: the client's stream"),
                    ));
                }
                input = Some((arg_ident, position));
                item = Some(inner[0].clone());
                stream_types.push((*typed.ty).clone());
            } else {
                args.push(Arg {
                    ident: arg_ident,
                    ty: (*typed.ty).clone(),
                });
            }
        }

        let returned: Type = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => (**ty).clone(),
        };
        let (ok, error) = match generic_of(&returned, "Result", 2) {
            Some(pair) => (pair[0].clone(), Some(pair[1].clone())),
            None => (returned.clone(), None),
        };
        let fallible = error.is_some();
        let streamed = generic_of(&ok, "Stream", 1).map(|inner| inner[0].clone());
        if streamed.is_some() {
            stream_types.push(ok.clone());
        }
        let kind = if oneway {
            if input.is_some() || streamed.is_some() {
                return Err(Error::new(
                    ident.span(),
                    format!("`#[oneway]` `{ident}` takes and returns no stream: it is one message"),
                ));
            }
            if !matches!(sig.output, ReturnType::Default) {
                return Err(Error::new(
                    sig.output.span(),
                    format!(
                        "`#[oneway]` `{ident}` returns nothing: the client does not wait for \
                         an answer"
                    ),
                ));
            }
            Kind::OneWay
        } else if streamed.is_some() {
            Kind::Streaming
        } else if input.is_some() {
            return Err(Error::new(
                sig.output.span(),
                format!(
                    "`{ident}` takes the client's stream, so it answers with one too \
                     (`-> Stream<T>`): a stream answered by one value is not supported"
                ),
            ));
        } else {
            Kind::Unary
        };
        if let Some(out) = &streamed {
            if let Some(inp) = item.as_ref().filter(|inp| !same_type(out, inp)) {
                return Err(Error::new(
                    out.span(),
                    format!(
                        "every stream of a protocol carries one item type (an enum, if they \
                         differ): `{ident}` takes `{}` and returns `{}`",
                        shown(inp),
                        shown(out)
                    ),
                ));
            }
            item = Some(out.clone());
        }
        let method = Method {
            stream_types,
            ident,
            docs: docs(&f.attrs),
            kind,
            args,
            input,
            output: ok,
            fallible,
            since,
        };
        Ok((method, error, item))
    }
}

/// The type arguments of `ty` if it is `Name<..>` with `count` of them
/// (matched on the last path segment, so `std::result::Result` counts).
fn generic_of(ty: &Type, name: &str, count: usize) -> Option<Vec<Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let types: Vec<Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    (types.len() == count).then_some(types)
}

fn docs(attrs: &[Attribute]) -> Vec<Attribute> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect()
}

/// The handshake's rule for a protocol name (spec 3.3.2), checked here so
/// a bad one fails the build, not the first connection.
fn check_name(lit: &LitStr) -> syn::Result<()> {
    let name = lit.value();
    let ok = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            lit.span(),
            "a protocol's name is 1 to 32 ASCII letters, digits, `-`, `_` or `.`",
        ))
    }
}
