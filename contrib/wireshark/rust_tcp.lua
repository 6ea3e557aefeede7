-- Wireshark dissector for the rust-tcp protocol (docs/PROTOCOL.md):
-- v1 messages, every v2 frame type with its fields, and the frozen
-- unsupported-version reply. Frames split across TCP segments are
-- reassembled; several frames in one segment are shown one by one.
--
-- Use: copy this file to your personal Lua plugins folder (Help > About
-- Wireshark > Folders), or run `wireshark -X lua_script:rust_tcp.lua`.
-- It is registered on TCP port 8080 (the server's default); for any other
-- port use Analyze > Decode As > TCP port > RUST-TCP.
-- `tshark -X lua_script:rust_tcp.lua -r capture.pcap -V` prints every field.

local p = Proto("rust_tcp", "rust-tcp protocol")

local TYPES = {
    [0x01] = "HELLO", [0x02] = "WELCOME", [0x03] = "TEXT", [0x04] = "BINARY",
    [0x05] = "REQUEST", [0x06] = "RESPONSE", [0x07] = "PING", [0x08] = "PONG",
    [0x09] = "ERROR", [0x0a] = "CLOSE", [0x0b] = "GOAWAY",
}
local CODES = {
    [1000] = "normal", [1001] = "going away", [1002] = "protocol error",
    [1007] = "invalid data", [1008] = "policy violation", [1009] = "frame too large",
    [1010] = "handshake refused", [1011] = "internal error", [1013] = "slow consumer",
    [1014] = "heartbeat timeout", [1016] = "server full",
}
local EXTENSIONS = { [0x0001] = "authentication token" }

local f = p.fields
f.summary = ProtoField.string("rust_tcp.summary", "Summary")
f.version = ProtoField.uint8("rust_tcp.version", "Version")
f.v1_length = ProtoField.uint16("rust_tcp.v1.length", "Length")
f.v1_content = ProtoField.string("rust_tcp.v1.content", "Content")
f.type = ProtoField.uint8("rust_tcp.v2.type", "Type", base.HEX, TYPES)
f.length = ProtoField.uint32("rust_tcp.v2.length", "Payload length")
f.versions = ProtoField.bytes("rust_tcp.versions", "Versions")
f.max_frame = ProtoField.uint32("rust_tcp.max_frame", "Max frame")
f.heartbeat = ProtoField.uint32("rust_tcp.heartbeat_ms", "Heartbeat (ms)")
f.name = ProtoField.string("rust_tcp.name", "Name")
f.chosen = ProtoField.uint8("rust_tcp.chosen_version", "Chosen version")
f.ext_count = ProtoField.uint16("rust_tcp.ext.count", "Extensions")
f.ext_type = ProtoField.uint16("rust_tcp.ext.type", "Extension type", base.HEX, EXTENSIONS)
f.ext_critical = ProtoField.bool("rust_tcp.ext.critical", "Critical")
f.ext_length = ProtoField.uint16("rust_tcp.ext.length", "Extension length")
f.ext_data = ProtoField.bytes("rust_tcp.ext.data", "Extension data")
f.text = ProtoField.string("rust_tcp.text", "Text")
f.data = ProtoField.bytes("rust_tcp.data", "Data")
f.id = ProtoField.uint32("rust_tcp.request_id", "Request id")
f.status = ProtoField.uint8("rust_tcp.status", "Status", base.DEC, { [0] = "ok", [1] = "failed" })
f.nonce = ProtoField.uint64("rust_tcp.nonce", "Nonce")
f.code = ProtoField.uint16("rust_tcp.code", "Code", base.DEC, CODES)
f.reason = ProtoField.string("rust_tcp.reason", "Reason")
f.reply_count = ProtoField.uint8("rust_tcp.reply.count", "Versions spoken")

local e_malformed = ProtoExpert.new("rust_tcp.malformed", "Malformed rust-tcp frame",
    expert.group.MALFORMED, expert.severity.ERROR)
local e_unknown = ProtoExpert.new("rust_tcp.unknown_version", "Unknown protocol version",
    expert.group.PROTOCOL, expert.severity.WARN)
p.experts = { e_malformed, e_unknown }

-- The length of the frame starting at `offset`, or nil while its header is
-- incomplete; false if the first byte is no version.
local function frame_length(tvb, offset)
    local left = tvb:len() - offset
    local first = tvb(offset, 1):uint()
    if first == 1 then
        if left < 3 then return nil end
        return 3 + tvb(offset + 1, 2):uint()
    elseif first == 2 then
        if left < 6 then return nil end
        return 6 + tvb(offset + 2, 4):uint()
    elseif first == 0 then
        if left < 2 then return nil end
        local count = tvb(offset + 1, 1):uint()
        if left < 4 + count then return nil end
        return 4 + count + tvb(offset + 2 + count, 2):uint()
    end
    return false
end

local function str(range)
    if range:len() == 0 then return "" end
    return range:string(ENC_UTF_8)
end

-- code u16 + reason (ERROR, CLOSE, GOAWAY)
local function code_reason(t, tree, name)
    if t:len() < 2 then return nil end
    local code = t(0, 2):uint()
    tree:add(f.code, t(0, 2))
    local reason = str(t(2))
    tree:add(f.reason, t(2), reason)
    return string.format("%s %d %q", name, code, reason)
end

-- The extensions area after a HELLO's or WELCOME's fields.
local function extensions(t, offset, tree)
    if offset >= t:len() then return true end
    if t:len() - offset < 2 then return false end
    local count = t(offset, 2):uint()
    tree:add(f.ext_count, t(offset, 2))
    offset = offset + 2
    for _ = 1, count do
        if t:len() - offset < 4 then return false end
        local kind, len = t(offset, 2):uint(), t(offset + 2, 2):uint()
        if t:len() - offset - 4 < len then return false end
        local ext = tree:add(p, t(offset, 4 + len), "Extension")
        ext:add(f.ext_type, t(offset, 2))
        ext:add(f.ext_critical, kind >= 0x8000)
        ext:add(f.ext_length, t(offset + 2, 2))
        if len > 0 then ext:add(f.ext_data, t(offset + 4, len)) end
        offset = offset + 4 + len
    end
    return offset == t:len()
end

-- One v2 payload `t` of frame type `kind`: its fields, and a summary.
local function v2_payload(kind, t, tree)
    local name = TYPES[kind]
    if name == nil then return nil end
    local n = t:len()
    if kind == 0x01 then -- HELLO
        if n < 1 then return nil end
        local count = t(0, 1):uint()
        if n < 1 + count + 10 then return nil end
        tree:add(f.versions, t(1, count))
        local o = 1 + count
        tree:add(f.max_frame, t(o, 4))
        tree:add(f.heartbeat, t(o + 4, 4))
        local len = t(o + 8, 2):uint()
        if n < o + 10 + len then return nil end
        local client = str(t(o + 10, len))
        tree:add(f.name, t(o + 10, len), client)
        if not extensions(t, o + 10 + len, tree) then return nil end
        return string.format("HELLO versions=%s max_frame=%d heartbeat_ms=%d name=%s",
            tostring(t(1, count):bytes()), t(o, 4):uint(), t(o + 4, 4):uint(), client)
    elseif kind == 0x02 then -- WELCOME
        if n < 11 then return nil end
        tree:add(f.chosen, t(0, 1))
        tree:add(f.max_frame, t(1, 4))
        tree:add(f.heartbeat, t(5, 4))
        local len = t(9, 2):uint()
        if n < 11 + len then return nil end
        local server = str(t(11, len))
        tree:add(f.name, t(11, len), server)
        if not extensions(t, 11 + len, tree) then return nil end
        return string.format("WELCOME version=%d max_frame=%d heartbeat_ms=%d name=%s",
            t(0, 1):uint(), t(1, 4):uint(), t(5, 4):uint(), server)
    elseif kind == 0x03 then -- TEXT
        local text = n > 0 and str(t()) or ""
        if n > 0 then tree:add(f.text, t(), text) end
        return string.format("TEXT %q", text)
    elseif kind == 0x04 then -- BINARY
        if n > 0 then tree:add(f.data, t()) end
        return string.format("BINARY %d bytes", n)
    elseif kind == 0x05 then -- REQUEST
        if n < 4 then return nil end
        tree:add(f.id, t(0, 4))
        if n > 4 then tree:add(f.data, t(4)) end
        return string.format("REQUEST id=%d %d bytes", t(0, 4):uint(), n - 4)
    elseif kind == 0x06 then -- RESPONSE
        if n < 5 then return nil end
        tree:add(f.id, t(0, 4))
        tree:add(f.status, t(4, 1))
        local status = t(4, 1):uint()
        if status == 1 then
            local reason = n > 5 and str(t(5)) or ""
            if n > 5 then tree:add(f.reason, t(5), reason) end
            return string.format("RESPONSE id=%d failed %q", t(0, 4):uint(), reason)
        elseif status ~= 0 then
            return nil
        end
        if n > 5 then tree:add(f.data, t(5)) end
        return string.format("RESPONSE id=%d ok %d bytes", t(0, 4):uint(), n - 5)
    elseif kind == 0x07 or kind == 0x08 then -- PING, PONG
        if n ~= 8 then return nil end
        tree:add(f.nonce, t(0, 8))
        return string.format("%s nonce=%s", name, tostring(t(0, 8):uint64()))
    else -- ERROR, CLOSE, GOAWAY
        return code_reason(t, tree, name)
    end
end

-- One whole frame (or reply) in `t`; returns its summary.
local function dissect_frame(t, pinfo, tree)
    local first = t(0, 1):uint()
    local item = tree:add(p, t())
    local summary
    if first == 1 then
        item:add(f.version, t(0, 1))
        item:add(f.v1_length, t(1, 2))
        local content = t:len() > 3 and str(t(3)) or ""
        if t:len() > 3 then item:add(f.v1_content, t(3), content) end
        summary = string.format("v1 %q", content)
    elseif first == 2 then
        item:add(f.version, t(0, 1))
        item:add(f.type, t(1, 1))
        item:add(f.length, t(2, 4))
        local payload = t:len() > 6 and t(6):tvb() or ByteArray.new(""):tvb("empty")
        local s = v2_payload(t(1, 1):uint(), payload, item)
        summary = s and ("v2 " .. s) or nil
    else
        local count = t(1, 1):uint()
        item:add(f.reply_count, t(1, 1))
        item:add(f.versions, t(2, count))
        local reason = str(t(4 + count))
        item:add(f.reason, t(4 + count), reason)
        summary = string.format("UNSUPPORTED VERSION reply: speaks %s, %q",
            tostring(t(2, count):bytes()), reason)
    end
    if summary == nil then
        item:add_proto_expert_info(e_malformed)
        summary = "malformed"
    end
    item:add(f.summary, summary):set_generated()
    item:append_text(": " .. summary)
    return summary
end

function p.dissector(tvb, pinfo, tree)
    local offset, total = 0, tvb:len()
    local shown = {}
    while offset < total do
        local len = frame_length(tvb, offset)
        if len == nil then
            -- The header itself continues in the next segment.
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        elseif len == false then
            -- A client speaking a version this protocol does not have (the
            -- server answers with the unsupported-version reply).
            local item = tree:add(p, tvb(offset))
            local summary = string.format("unknown version %d, %d bytes not decoded",
                tvb(offset, 1):uint(), total - offset)
            item:add_proto_expert_info(e_unknown)
            item:add(f.summary, summary):set_generated()
            item:append_text(": " .. summary)
            shown[#shown + 1] = summary
            offset = total
            break
        elseif offset + len > total then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = offset + len - total
            break
        end
        shown[#shown + 1] = dissect_frame(tvb(offset, len):tvb(), pinfo, tree)
        offset = offset + len
    end
    if #shown > 0 then
        pinfo.cols.protocol = "RUST-TCP"
        pinfo.cols.info = table.concat(shown, "; ")
    end
    return total
end

DissectorTable.get("tcp.port"):add(8080, p)
