/// The BTF of an ELF object checked before libbpf sees it. libbpf before 1.3 doesn't check that the type ids a BTF
/// type refers to exist, and follows them: a `.BTF` section naming a type past its last one crashes the process
/// inside `bpf_object__open_*` (found by `FuzzTests.bpfObjects`). Objects come from uploads and repositories, so every
/// reference is checked here first, with the header's and each type's bounds; a section libbpf would misread is refused.
enum BTFCheck {
    /// The problem with `bytes`' `.BTF` section, or `nil` when it is sound or absent (the ELF itself is libbpf's to judge).
    static func problem(in bytes: [UInt8]) -> String? {
        guard let section = btfSection(bytes) else { return nil }
        return problem(btf: section, in: bytes)
    }

    private static func u16(_ b: [UInt8], _ at: Int) -> Int? { at >= 0 && at + 2 <= b.count ? Int(b[at]) | Int(b[at + 1]) << 8 : nil }
    private static func u32(_ b: [UInt8], _ at: Int) -> Int? { u16(b, at).flatMap { low in u16(b, at + 2).map { low | $0 << 16 } } }
    private static func u64(_ b: [UInt8], _ at: Int) -> Int? {
        guard let low = u32(b, at), let high = u32(b, at + 4), high < 1 << 31 else { return nil }
        return low | high << 32
    }

    /// Whether the object's `.BTF.ext` section holds CO-RE relocations (its header's `core_relo_len`), which need the
    /// kernel's own BTF to be resolved.
    static func hasCORERelocations(_ b: [UInt8]) -> Bool {
        guard let range = section(".BTF.ext", in: b) else { return false }
        let ext = Array(b[range])
        // magic, version, flags, hdr_len; func_info off/len, line_info off/len; core_relo off/len when hdr_len >= 32.
        guard let magic = u16(ext, 0), magic == 0xeb9f, let headerLength = u32(ext, 4), headerLength >= 32, let length = u32(ext, 28) else { return false }
        return length > 0
    }

    /// The `.BTF` section's bytes range, when the ELF (64-bit, little-endian) names one within the file.
    private static func btfSection(_ b: [UInt8]) -> Range<Int>? { section(".BTF", in: b) }

    /// The bytes range of the section called `wanted`, when the ELF (64-bit, little-endian) names one within the file.
    private static func section(_ wanted: String, in b: [UInt8]) -> Range<Int>? {
        guard b.count >= 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[4] == 2, b[5] == 1,
              let shoff = u64(b, 0x28), let entsize = u16(b, 0x3a), let count = u16(b, 0x3c), let names = u16(b, 0x3e),
              entsize == 64, names < count, shoff <= b.count, count * 64 <= b.count - shoff
        else { return nil }
        func header(_ i: Int) -> (name: Int, offset: Int, size: Int)? {
            let at = shoff + i * 64
            guard let name = u32(b, at), let offset = u64(b, at + 24), let size = u64(b, at + 32), offset <= b.count, size <= b.count - offset else { return nil }
            return (name, offset, size)
        }
        guard let strings = header(names) else { return nil }
        for i in 0..<count {
            guard let section = header(i), section.name < strings.size else { continue }
            let start = strings.offset + section.name
            let target = Array(wanted.utf8) + [0]
            let name = Array(b[start..<min(start + target.count, strings.offset + strings.size)])
            if name == target { return section.offset..<section.offset + section.size }
        }
        return nil
    }

    private static func problem(btf range: Range<Int>, in all: [UInt8]) -> String? {
        let b = Array(all[range])
        guard let magic = u16(b, 0), magic == 0xeb9f, b.count >= 24, let headerLength = u32(b, 4), let typeOffset = u32(b, 8),
              let typeLength = u32(b, 12), let stringOffset = u32(b, 16), let stringLength = u32(b, 20),
              headerLength >= 24, headerLength <= b.count,
              typeOffset <= b.count - headerLength, typeLength <= b.count - headerLength - typeOffset,
              stringOffset <= b.count - headerLength, stringLength <= b.count - headerLength - stringOffset
        else { return "its .BTF header is malformed" }
        let start = headerLength + typeOffset, end = start + typeLength
        // First pass: where each type starts, and its references; type ids count from 1 (0 is void).
        var references: [Int] = []
        var at = start, types = 0
        while at < end {
            guard let nameOffset = u32(b, at), let info = u32(b, at + 4), let sizeOrType = u32(b, at + 8) else { return "a .BTF type is cut short" }
            guard nameOffset < max(stringLength, 1) else { return "a .BTF type's name is outside the string section" }
            let kind = (info >> 24) & 0x1f, count = info & 0xffff
            at += 12
            types += 1
            func each(_ size: Int, _ body: (Int) -> Void) -> Bool {
                guard count * size <= end - at else { return false }
                for i in 0..<count { body(at + i * size) }
                at += count * size
                return true
            }
            switch kind {
            case 1: at += 4                                        // INT
            case 2, 8, 9, 10, 11, 12, 18: references.append(sizeOrType)  // PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, TYPE_TAG
            case 3:                                                // ARRAY: element and index types
                guard let element = u32(b, at), let index = u32(b, at + 4) else { return "a .BTF array is cut short" }
                references += [element, index]
                at += 12
            case 4, 5:                                             // STRUCT, UNION: members
                guard each(12, { if let type = u32(b, $0 + 4) { references.append(type) } }) else { return "a .BTF struct is cut short" }
            case 6: guard each(8, { _ in }) else { return "a .BTF enum is cut short" }
            case 7, 16: break                                      // FWD, FLOAT
            case 13:                                               // FUNC_PROTO: return type and parameters
                references.append(sizeOrType)
                guard each(8, { if let type = u32(b, $0 + 4) { references.append(type) } }) else { return "a .BTF function prototype is cut short" }
            case 14, 17: references.append(sizeOrType); at += 4    // VAR, DECL_TAG
            case 15:                                               // DATASEC: its variables
                guard each(12, { if let type = u32(b, $0) { references.append(type) } }) else { return "a .BTF data section is cut short" }
            case 19: guard each(12, { _ in }) else { return "a .BTF enum is cut short" }
            default: return "a .BTF type has the unknown kind \(kind)"
            }
            guard at <= end else { return "a .BTF type runs past the type section" }
        }
        if let bad = references.first(where: { $0 > types }) { return "a .BTF type refers to type \(bad), but there are \(types)" }
        return nil
    }
}
