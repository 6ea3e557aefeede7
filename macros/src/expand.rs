//! The code a service becomes, for a trait `Kv`:
//!
//! - `KvProtocol`, the [`Protocol`] marker, with `KvRequest` (a variant per
//!   unary or streaming call, its arguments as named fields), `KvResponse`
//!   (a variant per unary call, holding its answer) and `KvMessage` (a
//!   variant per one-way call) — the enum form the typed layer already
//!   speaks, so the wire is what a hand-written protocol would send;
//! - the trait `Kv` again, as the server implements it: `&self` and the
//!   call's context added to each method;
//! - `KvServer<S>`, which dispatches each request to its method;
//! - `KvClient`, with a method per call returning that call's own answer.
//!
//! Every path is absolute (`::rust_tcp::typed::...`) so the code compiles
//! wherever the macro is used.

use heck::ToUpperCamelCase;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use crate::model::{Kind, Method, Service};

pub fn expand(s: &Service) -> TokenStream {
    let names = Names::of(s);
    let types = types(s, &names);
    let protocol = protocol(s, &names);
    let server_trait = server_trait(s, &names);
    let server = server(s, &names);
    let client = client(s, &names);
    let streams = &s.stream_types;
    // The markers the trait named, named once more: the user imported
    // `Stream` for them, and the trait they were in is rewritten.
    let markers = quote! {
        const _: () = { #(let _: ::core::option::Option<#streams> = ::core::option::Option::None;)* };
    };
    quote! { #types #protocol #server_trait #server #client #markers }
}

/// The generated items' names.
struct Names {
    protocol: Ident,
    request: Ident,
    response: Ident,
    message: Ident,
    server: Ident,
    client: Ident,
}

impl Names {
    fn of(s: &Service) -> Names {
        let t = &s.ident;
        Names {
            protocol: format_ident!("{t}Protocol"),
            request: format_ident!("{t}Request"),
            response: format_ident!("{t}Response"),
            message: format_ident!("{t}Message"),
            server: format_ident!("{t}Server"),
            client: format_ident!("{t}Client"),
        }
    }
}

fn variant(m: &Method) -> Ident {
    format_ident!("{}", m.ident.to_string().to_upper_camel_case())
}

/// `Variant` or `Variant { a, b }`: the request's pattern and its value.
fn fields(m: &Method) -> TokenStream {
    let v = variant(m);
    let idents = m.args.iter().map(|a| &a.ident);
    if m.args.is_empty() {
        quote!(#v)
    } else {
        quote!(#v { #(#idents),* })
    }
}

fn has_oneway(s: &Service) -> bool {
    s.methods.iter().any(|m| m.kind == Kind::OneWay)
}

/// The message enums, with the derives the typed layer needs. serde is
/// reached through the library so the user's crate need not name it.
fn types(s: &Service, n: &Names) -> TokenStream {
    let vis = &s.vis;
    let serde_attrs = quote! {
        #[derive(
            ::core::fmt::Debug,
            ::rust_tcp::typed::__private::serde::Serialize,
            ::rust_tcp::typed::__private::serde::Deserialize,
        )]
        #[serde(crate = "::rust_tcp::typed::__private::serde")]
    };
    let variant_of = |m: &Method| {
        let v = variant(m);
        let docs = &m.docs;
        let args = m.args.iter().map(|a| {
            let (i, t) = (&a.ident, &a.ty);
            quote!(#i: #t)
        });
        if m.args.is_empty() {
            quote!(#(#docs)* #v)
        } else {
            quote!(#(#docs)* #v { #(#args),* })
        }
    };
    let requests = s
        .methods
        .iter()
        .filter(|m| m.kind != Kind::OneWay)
        .map(variant_of);
    let responses = s.methods.iter().filter(|m| m.kind == Kind::Unary).map(|m| {
        let v = variant(m);
        let out = &m.output;
        let docs = &m.docs;
        quote!(#(#docs)* #v(#out))
    });
    let (request, response, message) = (&n.request, &n.response, &n.message);
    let trait_name = s.ident.to_string();
    let request_doc = format!("A call of `{trait_name}` (the unary and streaming ones), as sent.");
    let response_doc = format!("A unary call's answer in `{trait_name}`, as sent.");
    let message = if has_oneway(s) {
        let messages = s
            .methods
            .iter()
            .filter(|m| m.kind == Kind::OneWay)
            .map(variant_of);
        let doc = format!("A one-way message of `{trait_name}`, as sent.");
        quote! {
            #[doc = #doc]
            #serde_attrs
            #vis enum #message { #(#messages),* }
        }
    } else {
        quote!()
    };
    quote! {
        #[doc = #request_doc]
        #serde_attrs
        #vis enum #request { #(#requests),* }

        #[doc = #response_doc]
        #serde_attrs
        #vis enum #response { #(#responses),* }

        #message
    }
}

fn protocol(s: &Service, n: &Names) -> TokenStream {
    let vis = &s.vis;
    let docs = &s.docs;
    let (protocol, request, response, message) = (&n.protocol, &n.request, &n.response, &n.message);
    let (name, versions, event, error, item) = (&s.name, &s.versions, &s.event, &s.error, &s.item);
    let message_type = if has_oneway(s) {
        quote!(#message)
    } else {
        quote!(())
    };
    let infos = s
        .methods
        .iter()
        .filter(|m| m.kind != Kind::OneWay)
        .map(|m| {
            let v = variant(m);
            let call = m.ident.to_string();
            let info = if m.kind == Kind::Streaming {
                quote!(::rust_tcp::typed::CallInfo::streaming(#call))
            } else {
                quote!(::rust_tcp::typed::CallInfo::unary(#call))
            };
            let info = match m.since {
                Some(version) => quote!(#info.since(#version)),
                None => info,
            };
            let info = if m.input.is_some() {
                quote!(#info.with_client_stream())
            } else {
                info
            };
            quote!(#request::#v { .. } => #info)
        });
    let trait_doc = format!(
        "The protocol `{name}` of [`{}`], as the handshake offers it.",
        s.ident
    );
    quote! {
        #[doc = #trait_doc]
        #[doc = ""]
        #(#docs)*
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
        #vis struct #protocol;

        impl ::rust_tcp::typed::Protocol for #protocol {
            const NAME: &'static str = #name;
            const VERSIONS: ::core::ops::RangeInclusive<u16> = #versions;
            type Request = #request;
            type Response = #response;
            type Error = #error;
            type Message = #message_type;
            type Event = #event;
            type Item = #item;
            const RESPONSE_PER_CALL: bool = true;

            fn call_info(request: &#request) -> ::core::option::Option<::rust_tcp::typed::CallInfo> {
                ::core::option::Option::Some(match *request { #(#infos),* })
            }
        }
    }
}

/// What a method returns to the dispatch, as the server's trait says it.
fn server_output(s: &Service, n: &Names, m: &Method) -> TokenStream {
    let protocol = &n.protocol;
    let error = &s.error;
    let ok = match m.kind {
        Kind::Streaming => quote!(::rust_tcp::typed::ItemStream<#protocol>),
        Kind::Unary => {
            let out = &m.output;
            quote!(#out)
        }
        Kind::OneWay => quote!(()),
    };
    if m.fallible {
        quote!(::core::result::Result<#ok, #error>)
    } else {
        ok
    }
}

/// The trait again, as the server implements it.
fn server_trait(s: &Service, n: &Names) -> TokenStream {
    let vis = &s.vis;
    let ident = &s.ident;
    let docs = &s.docs;
    let protocol = &n.protocol;
    let methods = s.methods.iter().map(|m| {
        let name = &m.ident;
        let docs = &m.docs;
        let output = server_output(s, n, m);
        let context = if m.kind == Kind::OneWay {
            quote!(context: &::rust_tcp::typed::Context<#protocol>)
        } else {
            quote!(call: &::rust_tcp::typed::CallContext<#protocol>)
        };
        let mut args: Vec<TokenStream> = m
            .args
            .iter()
            .map(|a| {
                let (i, t) = (&a.ident, &a.ty);
                quote!(#i: #t)
            })
            .collect();
        if let Some((input, position)) = &m.input {
            let at = (*position).min(args.len());
            args.insert(at, quote!(#input: ::rust_tcp::typed::TypedItems<#protocol>));
        }
        quote! {
            #(#docs)*
            fn #name(&self, #context, #(#args),*)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send;
        }
    });
    let doc = format!(
        "The server's side of `{}`: implement it (with `async fn`s) and serve it with \
         [`{}`]. Each method is given the call's context (its deadline, metadata, \
         cancellation, and the connection's [`Context`](::rust_tcp::typed::Context)).",
        s.name, n.server
    );
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #(#docs)*
        #vis trait #ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#methods)*

            /// A connection is over and everything it brought has been
            /// handed over: await clean-up here. Nothing unless overridden.
            fn on_close(&self, context: &::rust_tcp::typed::Context<#protocol>)
                -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
                let _ = context;
                async {}
            }
        }
    }
}

fn server(s: &Service, n: &Names) -> TokenStream {
    let vis = &s.vis;
    let ident = &s.ident;
    let (protocol, request, response, message, server) =
        (&n.protocol, &n.request, &n.response, &n.message, &n.server);
    let error = &s.error;
    let call_arms = s
        .methods
        .iter()
        .filter(|m| m.kind != Kind::OneWay)
        .map(|m| {
            let name = &m.ident;
            let v = variant(m);
            let pattern = fields(m);
            let args = m.args.iter().map(|a| &a.ident);
            if m.kind == Kind::Streaming {
                let why = format!(
                    "`{name}` is a streaming call: the typed server refuses it as a unary one \
                 before dispatch (Protocol::call_info)"
                );
                return quote!(#request::#v { .. } => ::core::unreachable!(#why));
            }
            let answer = quote!(self.0.#name(call, #(#args),*).await);
            if m.fallible {
                quote!(#request::#pattern => #answer.map(#response::#v))
            } else {
                quote!(#request::#pattern => ::core::result::Result::Ok(#response::#v(#answer)))
            }
        });
    let streaming: Vec<&Method> = s
        .methods
        .iter()
        .filter(|m| m.kind == Kind::Streaming)
        .collect();
    let stream_fn = if streaming.is_empty() {
        quote!()
    } else {
        let arms = streaming.iter().map(|m| {
            let name = &m.ident;
            let pattern = fields(m);
            let mut args: Vec<TokenStream> = m
                .args
                .iter()
                .map(|a| {
                    let i = &a.ident;
                    quote!(#i)
                })
                .collect();
            let used = if let Some((_, position)) = &m.input {
                args.insert((*position).min(args.len()), quote!(input));
                quote!()
            } else {
                quote!(drop(input);)
            };
            let answer = quote!(self.0.#name(call, #(#args),*).await);
            if m.fallible {
                quote!(#request::#pattern => {
                    #used
                    #answer.map_err(::rust_tcp::typed::StreamError::Remote)
                })
            } else {
                quote!(#request::#pattern => {
                    #used
                    ::core::result::Result::Ok(#answer)
                })
            }
        });
        let rest = if s.methods.iter().any(|m| m.kind == Kind::Unary) {
            quote!(_ => ::core::result::Result::Err(::rust_tcp::typed::StreamError::Unsupported),)
        } else {
            quote!()
        };
        quote! {
            async fn stream(
                &self,
                request: #request,
                input: ::rust_tcp::typed::TypedItems<#protocol>,
                call: &::rust_tcp::typed::CallContext<#protocol>,
            ) -> ::core::result::Result<
                ::rust_tcp::typed::ItemStream<#protocol>,
                ::rust_tcp::typed::StreamError<#error>,
            > {
                match request { #(#arms)* #rest }
            }
        }
    };
    let message_fn = if has_oneway(s) {
        let arms = s
            .methods
            .iter()
            .filter(|m| m.kind == Kind::OneWay)
            .map(|m| {
                let name = &m.ident;
                let pattern = fields(m);
                let args = m.args.iter().map(|a| &a.ident);
                quote!(#message::#pattern => self.0.#name(context, #(#args),*).await,)
            });
        quote! {
            async fn on_message(&self, message: #message, context: &::rust_tcp::typed::Context<#protocol>) {
                match message { #(#arms)* }
            }
        }
    } else {
        quote!()
    };
    let doc = format!(
        "Serves an implementation of [`{ident}`]: each request goes to its method. \
         `server.run({server}::new(service).into_service(), shutdown)`, with the server \
         configured for the protocol \
         (`ServerConfig::app_protocol({protocol}::app_protocol())`)."
    );
    quote! {
        #[doc = #doc]
        #vis struct #server<S>(::std::sync::Arc<S>);

        impl<S> ::core::clone::Clone for #server<S> {
            fn clone(&self) -> Self {
                #server(self.0.clone())
            }
        }

        impl<S> ::core::fmt::Debug for #server<S> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#server))
            }
        }

        impl<S: #ident> #server<S> {
            /// Serves `service`, shared by every connection.
            pub fn new(service: S) -> Self {
                #server(::std::sync::Arc::new(service))
            }

            /// Serves a service that is shared already.
            pub fn from_arc(service: ::std::sync::Arc<S>) -> Self {
                #server(service)
            }

            /// The service the server runs.
            pub fn into_service(self) -> ::rust_tcp::typed::Typed<#protocol, Self> {
                ::rust_tcp::typed::Typed::new(self)
            }
        }

        impl<S: #ident> ::rust_tcp::typed::TypedService<#protocol> for #server<S> {
            type Handler = Self;
            fn connect(&self, _context: &::rust_tcp::typed::Context<#protocol>) -> Self {
                self.clone()
            }
        }

        impl<S: #ident> ::rust_tcp::typed::TypedHandler<#protocol> for #server<S> {
            fn call(
                &self,
                request: #request,
                context: &::rust_tcp::typed::Context<#protocol>,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<#response, #error>>
                   + ::core::marker::Send {
                // The server itself always comes through `call_with`; this
                // is for code that calls the handler by hand.
                let call = ::rust_tcp::typed::CallContext::new(
                    ::std::sync::Arc::new(::core::clone::Clone::clone(context)),
                );
                async move {
                    ::rust_tcp::typed::TypedHandler::call_with(self, request, &call).await
                }
            }

            async fn call_with(
                &self,
                request: #request,
                call: &::rust_tcp::typed::CallContext<#protocol>,
            ) -> ::core::result::Result<#response, #error> {
                match request { #(#call_arms),* }
            }

            #stream_fn
            #message_fn

            async fn on_close(&self, context: &::rust_tcp::typed::Context<#protocol>) {
                self.0.on_close(context).await
            }
        }
    }
}

fn client(s: &Service, n: &Names) -> TokenStream {
    let vis = &s.vis;
    let (protocol, request, response, message, client) =
        (&n.protocol, &n.request, &n.response, &n.message, &n.client);
    let error = &s.error;
    let call_error = quote!(::rust_tcp::typed::CallError<#error>);
    let methods = s.methods.iter().map(|m| {
        let name = &m.ident;
        let docs = &m.docs;
        let value = fields(m);
        let params = m.args.iter().map(|a| {
            let (i, t) = (&a.ident, &a.ty);
            quote!(#i: #t)
        });
        match m.kind {
            Kind::Unary => {
                let v = variant(m);
                let out = &m.output;
                let call = m.ident.to_string();
                quote! {
                    #(#docs)*
                    pub async fn #name(&self, #(#params),*) -> ::core::result::Result<#out, #call_error> {
                        let request = #request::#value;
                        let response = match &self.options {
                            ::core::option::Option::None => self.client.call(&request).await?,
                            ::core::option::Option::Some(options) => {
                                self.client.call_with(&request, options.clone()).await?
                            }
                        };
                        #[allow(unreachable_patterns)]
                        match response {
                            #response::#v(answer) => ::core::result::Result::Ok(answer),
                            _ => ::core::result::Result::Err(
                                ::rust_tcp::typed::CallError::UnexpectedResponse { call: #call },
                            ),
                        }
                    }
                }
            }
            Kind::Streaming => {
                let client_stream = if m.input.is_some() {
                    quote!(.client_stream(true))
                } else {
                    quote!()
                };
                let note = if m.input.is_some() {
                    "\n\nSend the call's own stream with `send_item` (or its `sender()`), and end it with `end_items`."
                } else {
                    ""
                };
                quote! {
                    #(#docs)*
                    #[doc = #note]
                    pub async fn #name(&self, #(#params),*)
                        -> ::core::result::Result<::rust_tcp::typed::TypedCall<#protocol>, #call_error>
                    {
                        let options = self.options.clone().unwrap_or_default() #client_stream;
                        self.client.stream(&#request::#value, options).await
                    }
                }
            }
            Kind::OneWay => quote! {
                #(#docs)*
                pub async fn #name(&self, #(#params),*) -> ::core::result::Result<(), #call_error> {
                    self.client.send(&#message::#value).await
                }
            },
        }
    });
    let doc = format!(
        "A connection speaking `{}`: a method per call, each returning that call's own \
         answer. Clone it to call from many tasks (one connection underneath).",
        s.name
    );
    quote! {
        #[doc = #doc]
        #[derive(::core::clone::Clone, ::core::fmt::Debug)]
        #vis struct #client {
            client: ::rust_tcp::typed::TypedClient<#protocol>,
            options: ::core::option::Option<::rust_tcp::CallOptions>,
        }

        impl ::core::convert::From<::rust_tcp::typed::TypedClient<#protocol>> for #client {
            fn from(client: ::rust_tcp::typed::TypedClient<#protocol>) -> Self {
                #client { client, options: ::core::option::Option::None }
            }
        }

        impl #client {
            /// Connects to `addr` (`host:port`, or `ws://` for WebSocket),
            /// asking for the protocol in the handshake.
            pub async fn connect(
                addr: &str,
                config: ::rust_tcp::ClientConfig,
            ) -> ::core::result::Result<Self, ::rust_tcp::ClientError> {
                ::rust_tcp::typed::TypedClient::connect(addr, config).await.map(Self::from)
            }

            /// The typed client underneath (the negotiated version, untyped
            /// use).
            pub fn typed(&self) -> &::rust_tcp::typed::TypedClient<#protocol> {
                &self.client
            }

            /// This client with `options` on every call it makes (a
            /// deadline, metadata; a streaming call's window): the same
            /// connection, so keep the plain one beside it.
            pub fn with_options(&self, options: ::rust_tcp::CallOptions) -> Self {
                #client {
                    client: self.client.clone(),
                    options: ::core::option::Option::Some(options),
                }
            }

            /// The server's events. The first call takes the one stream;
            /// later calls return `None`.
            pub fn events(&self) -> ::core::option::Option<::rust_tcp::typed::Events<#protocol>> {
                self.client.events()
            }

            /// Closes the session; `Ok` once the server has processed
            /// everything sent.
            pub async fn close(&self) -> ::core::result::Result<(), ::rust_tcp::ClientError> {
                self.client.close().await
            }

            #(#methods)*
        }
    }
}
