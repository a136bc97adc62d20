/* ===================================================================================== */
/* TOKENIZER  (owner: tokenizer issue)                                                     */
/* ===================================================================================== */
/* Byte-level BPE, as in GPT-2 and minbpe. A tokenizer is
     - 256 byte tokens (every byte string can be encoded, nothing is ever "unknown"),
     - an ordered list of merges (left, right) -> result: the model; rank = position in the list,
     - special tokens, matched in text only when the caller allows it.
   Encoding cuts the text into chunks with a pre-tokenizer (the GPT-2 or cl100k regex, written
   out by hand below), maps each chunk's bytes to byte tokens and applies merges, always the
   lowest-ranked adjacent pair first (leftmost on ties), until none applies.
   llama2.c's tokenizer.bin is a different model on the same machinery: the pieces have scores,
   the highest-scoring adjacent pair whose concatenation is a piece merges first, and code points
   missing from the vocabulary fall back to byte tokens <0xXX>.
   In order below: Unicode classes and the pre-tokenizers; the tokenizer object; encoding;
   decoding (and the streaming decoder); training; files (own text format, llama2.c .bin,
   Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt). */

#include <ctype.h>
#if !defined(DISTILL_NO_THREADS) && !defined(_WIN32)
#include <pthread.h>
#define DISTILL__TOK_LOCKS 1
#endif

DISTILL_API int distill_ids_push(distill_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64, bytes;
        int32_t *p;
        if (!distill__mul_size(cap, sizeof(int32_t), &bytes)) return -1;
        p = (int32_t *)DISTILL_REALLOC(a->ids, bytes);
        if (!p) return -1;
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
    return 0;
}

DISTILL_API void distill_ids_free(distill_ids *a) {
    DISTILL_FREE(a->ids);
    a->ids = NULL;
    a->n = a->cap = 0;
}

/* ---- Unicode classes ------------------------------------------------------------------- */
/* The regexes need three classes of code points: letters \p{L}, numbers \p{N} and white space
   \s. Everything else (punctuation, symbols, controls, and bytes that are not valid UTF-8) is
   "other". ASCII is a table lookup; the rest a binary search in the generated ranges. */
enum { DISTILL__C_OTHER = 0, DISTILL__C_L = 1, DISTILL__C_N = 2, DISTILL__C_WS = 3 };

/* BEGIN GENERATED UNICODE TABLES (tools/gen_unicode_tables.py; do not edit by hand) */
/* Unicode 15.0.0: 796 ranges of letters (class 1, \p{L}) and numbers (class 2, \p{N}), sorted. */
static const uint32_t distill__tk_uni_ln[796][3] = {
    {0x30,0x39,2},{0x41,0x5A,1},{0x61,0x7A,1},{0xAA,0xAA,1},{0xB2,0xB3,2},
    {0xB5,0xB5,1},{0xB9,0xB9,2},{0xBA,0xBA,1},{0xBC,0xBE,2},{0xC0,0xD6,1},
    {0xD8,0xF6,1},{0xF8,0x2C1,1},{0x2C6,0x2D1,1},{0x2E0,0x2E4,1},{0x2EC,0x2EC,1},
    {0x2EE,0x2EE,1},{0x370,0x374,1},{0x376,0x377,1},{0x37A,0x37D,1},{0x37F,0x37F,1},
    {0x386,0x386,1},{0x388,0x38A,1},{0x38C,0x38C,1},{0x38E,0x3A1,1},{0x3A3,0x3F5,1},
    {0x3F7,0x481,1},{0x48A,0x52F,1},{0x531,0x556,1},{0x559,0x559,1},{0x560,0x588,1},
    {0x5D0,0x5EA,1},{0x5EF,0x5F2,1},{0x620,0x64A,1},{0x660,0x669,2},{0x66E,0x66F,1},
    {0x671,0x6D3,1},{0x6D5,0x6D5,1},{0x6E5,0x6E6,1},{0x6EE,0x6EF,1},{0x6F0,0x6F9,2},
    {0x6FA,0x6FC,1},{0x6FF,0x6FF,1},{0x710,0x710,1},{0x712,0x72F,1},{0x74D,0x7A5,1},
    {0x7B1,0x7B1,1},{0x7C0,0x7C9,2},{0x7CA,0x7EA,1},{0x7F4,0x7F5,1},{0x7FA,0x7FA,1},
    {0x800,0x815,1},{0x81A,0x81A,1},{0x824,0x824,1},{0x828,0x828,1},{0x840,0x858,1},
    {0x860,0x86A,1},{0x870,0x887,1},{0x889,0x88E,1},{0x8A0,0x8C9,1},{0x904,0x939,1},
    {0x93D,0x93D,1},{0x950,0x950,1},{0x958,0x961,1},{0x966,0x96F,2},{0x971,0x980,1},
    {0x985,0x98C,1},{0x98F,0x990,1},{0x993,0x9A8,1},{0x9AA,0x9B0,1},{0x9B2,0x9B2,1},
    {0x9B6,0x9B9,1},{0x9BD,0x9BD,1},{0x9CE,0x9CE,1},{0x9DC,0x9DD,1},{0x9DF,0x9E1,1},
    {0x9E6,0x9EF,2},{0x9F0,0x9F1,1},{0x9F4,0x9F9,2},{0x9FC,0x9FC,1},{0xA05,0xA0A,1},
    {0xA0F,0xA10,1},{0xA13,0xA28,1},{0xA2A,0xA30,1},{0xA32,0xA33,1},{0xA35,0xA36,1},
    {0xA38,0xA39,1},{0xA59,0xA5C,1},{0xA5E,0xA5E,1},{0xA66,0xA6F,2},{0xA72,0xA74,1},
    {0xA85,0xA8D,1},{0xA8F,0xA91,1},{0xA93,0xAA8,1},{0xAAA,0xAB0,1},{0xAB2,0xAB3,1},
    {0xAB5,0xAB9,1},{0xABD,0xABD,1},{0xAD0,0xAD0,1},{0xAE0,0xAE1,1},{0xAE6,0xAEF,2},
    {0xAF9,0xAF9,1},{0xB05,0xB0C,1},{0xB0F,0xB10,1},{0xB13,0xB28,1},{0xB2A,0xB30,1},
    {0xB32,0xB33,1},{0xB35,0xB39,1},{0xB3D,0xB3D,1},{0xB5C,0xB5D,1},{0xB5F,0xB61,1},
    {0xB66,0xB6F,2},{0xB71,0xB71,1},{0xB72,0xB77,2},{0xB83,0xB83,1},{0xB85,0xB8A,1},
    {0xB8E,0xB90,1},{0xB92,0xB95,1},{0xB99,0xB9A,1},{0xB9C,0xB9C,1},{0xB9E,0xB9F,1},
    {0xBA3,0xBA4,1},{0xBA8,0xBAA,1},{0xBAE,0xBB9,1},{0xBD0,0xBD0,1},{0xBE6,0xBF2,2},
    {0xC05,0xC0C,1},{0xC0E,0xC10,1},{0xC12,0xC28,1},{0xC2A,0xC39,1},{0xC3D,0xC3D,1},
    {0xC58,0xC5A,1},{0xC5D,0xC5D,1},{0xC60,0xC61,1},{0xC66,0xC6F,2},{0xC78,0xC7E,2},
    {0xC80,0xC80,1},{0xC85,0xC8C,1},{0xC8E,0xC90,1},{0xC92,0xCA8,1},{0xCAA,0xCB3,1},
    {0xCB5,0xCB9,1},{0xCBD,0xCBD,1},{0xCDD,0xCDE,1},{0xCE0,0xCE1,1},{0xCE6,0xCEF,2},
    {0xCF1,0xCF2,1},{0xD04,0xD0C,1},{0xD0E,0xD10,1},{0xD12,0xD3A,1},{0xD3D,0xD3D,1},
    {0xD4E,0xD4E,1},{0xD54,0xD56,1},{0xD58,0xD5E,2},{0xD5F,0xD61,1},{0xD66,0xD78,2},
    {0xD7A,0xD7F,1},{0xD85,0xD96,1},{0xD9A,0xDB1,1},{0xDB3,0xDBB,1},{0xDBD,0xDBD,1},
    {0xDC0,0xDC6,1},{0xDE6,0xDEF,2},{0xE01,0xE30,1},{0xE32,0xE33,1},{0xE40,0xE46,1},
    {0xE50,0xE59,2},{0xE81,0xE82,1},{0xE84,0xE84,1},{0xE86,0xE8A,1},{0xE8C,0xEA3,1},
    {0xEA5,0xEA5,1},{0xEA7,0xEB0,1},{0xEB2,0xEB3,1},{0xEBD,0xEBD,1},{0xEC0,0xEC4,1},
    {0xEC6,0xEC6,1},{0xED0,0xED9,2},{0xEDC,0xEDF,1},{0xF00,0xF00,1},{0xF20,0xF33,2},
    {0xF40,0xF47,1},{0xF49,0xF6C,1},{0xF88,0xF8C,1},{0x1000,0x102A,1},{0x103F,0x103F,1},
    {0x1040,0x1049,2},{0x1050,0x1055,1},{0x105A,0x105D,1},{0x1061,0x1061,1},{0x1065,0x1066,1},
    {0x106E,0x1070,1},{0x1075,0x1081,1},{0x108E,0x108E,1},{0x1090,0x1099,2},{0x10A0,0x10C5,1},
    {0x10C7,0x10C7,1},{0x10CD,0x10CD,1},{0x10D0,0x10FA,1},{0x10FC,0x1248,1},{0x124A,0x124D,1},
    {0x1250,0x1256,1},{0x1258,0x1258,1},{0x125A,0x125D,1},{0x1260,0x1288,1},{0x128A,0x128D,1},
    {0x1290,0x12B0,1},{0x12B2,0x12B5,1},{0x12B8,0x12BE,1},{0x12C0,0x12C0,1},{0x12C2,0x12C5,1},
    {0x12C8,0x12D6,1},{0x12D8,0x1310,1},{0x1312,0x1315,1},{0x1318,0x135A,1},{0x1369,0x137C,2},
    {0x1380,0x138F,1},{0x13A0,0x13F5,1},{0x13F8,0x13FD,1},{0x1401,0x166C,1},{0x166F,0x167F,1},
    {0x1681,0x169A,1},{0x16A0,0x16EA,1},{0x16EE,0x16F0,2},{0x16F1,0x16F8,1},{0x1700,0x1711,1},
    {0x171F,0x1731,1},{0x1740,0x1751,1},{0x1760,0x176C,1},{0x176E,0x1770,1},{0x1780,0x17B3,1},
    {0x17D7,0x17D7,1},{0x17DC,0x17DC,1},{0x17E0,0x17E9,2},{0x17F0,0x17F9,2},{0x1810,0x1819,2},
    {0x1820,0x1878,1},{0x1880,0x1884,1},{0x1887,0x18A8,1},{0x18AA,0x18AA,1},{0x18B0,0x18F5,1},
    {0x1900,0x191E,1},{0x1946,0x194F,2},{0x1950,0x196D,1},{0x1970,0x1974,1},{0x1980,0x19AB,1},
    {0x19B0,0x19C9,1},{0x19D0,0x19DA,2},{0x1A00,0x1A16,1},{0x1A20,0x1A54,1},{0x1A80,0x1A89,2},
    {0x1A90,0x1A99,2},{0x1AA7,0x1AA7,1},{0x1B05,0x1B33,1},{0x1B45,0x1B4C,1},{0x1B50,0x1B59,2},
    {0x1B83,0x1BA0,1},{0x1BAE,0x1BAF,1},{0x1BB0,0x1BB9,2},{0x1BBA,0x1BE5,1},{0x1C00,0x1C23,1},
    {0x1C40,0x1C49,2},{0x1C4D,0x1C4F,1},{0x1C50,0x1C59,2},{0x1C5A,0x1C7D,1},{0x1C80,0x1C88,1},
    {0x1C90,0x1CBA,1},{0x1CBD,0x1CBF,1},{0x1CE9,0x1CEC,1},{0x1CEE,0x1CF3,1},{0x1CF5,0x1CF6,1},
    {0x1CFA,0x1CFA,1},{0x1D00,0x1DBF,1},{0x1E00,0x1F15,1},{0x1F18,0x1F1D,1},{0x1F20,0x1F45,1},
    {0x1F48,0x1F4D,1},{0x1F50,0x1F57,1},{0x1F59,0x1F59,1},{0x1F5B,0x1F5B,1},{0x1F5D,0x1F5D,1},
    {0x1F5F,0x1F7D,1},{0x1F80,0x1FB4,1},{0x1FB6,0x1FBC,1},{0x1FBE,0x1FBE,1},{0x1FC2,0x1FC4,1},
    {0x1FC6,0x1FCC,1},{0x1FD0,0x1FD3,1},{0x1FD6,0x1FDB,1},{0x1FE0,0x1FEC,1},{0x1FF2,0x1FF4,1},
    {0x1FF6,0x1FFC,1},{0x2070,0x2070,2},{0x2071,0x2071,1},{0x2074,0x2079,2},{0x207F,0x207F,1},
    {0x2080,0x2089,2},{0x2090,0x209C,1},{0x2102,0x2102,1},{0x2107,0x2107,1},{0x210A,0x2113,1},
    {0x2115,0x2115,1},{0x2119,0x211D,1},{0x2124,0x2124,1},{0x2126,0x2126,1},{0x2128,0x2128,1},
    {0x212A,0x212D,1},{0x212F,0x2139,1},{0x213C,0x213F,1},{0x2145,0x2149,1},{0x214E,0x214E,1},
    {0x2150,0x2182,2},{0x2183,0x2184,1},{0x2185,0x2189,2},{0x2460,0x249B,2},{0x24EA,0x24FF,2},
    {0x2776,0x2793,2},{0x2C00,0x2CE4,1},{0x2CEB,0x2CEE,1},{0x2CF2,0x2CF3,1},{0x2CFD,0x2CFD,2},
    {0x2D00,0x2D25,1},{0x2D27,0x2D27,1},{0x2D2D,0x2D2D,1},{0x2D30,0x2D67,1},{0x2D6F,0x2D6F,1},
    {0x2D80,0x2D96,1},{0x2DA0,0x2DA6,1},{0x2DA8,0x2DAE,1},{0x2DB0,0x2DB6,1},{0x2DB8,0x2DBE,1},
    {0x2DC0,0x2DC6,1},{0x2DC8,0x2DCE,1},{0x2DD0,0x2DD6,1},{0x2DD8,0x2DDE,1},{0x2E2F,0x2E2F,1},
    {0x3005,0x3006,1},{0x3007,0x3007,2},{0x3021,0x3029,2},{0x3031,0x3035,1},{0x3038,0x303A,2},
    {0x303B,0x303C,1},{0x3041,0x3096,1},{0x309D,0x309F,1},{0x30A1,0x30FA,1},{0x30FC,0x30FF,1},
    {0x3105,0x312F,1},{0x3131,0x318E,1},{0x3192,0x3195,2},{0x31A0,0x31BF,1},{0x31F0,0x31FF,1},
    {0x3220,0x3229,2},{0x3248,0x324F,2},{0x3251,0x325F,2},{0x3280,0x3289,2},{0x32B1,0x32BF,2},
    {0x3400,0x4DBF,1},{0x4E00,0xA48C,1},{0xA4D0,0xA4FD,1},{0xA500,0xA60C,1},{0xA610,0xA61F,1},
    {0xA620,0xA629,2},{0xA62A,0xA62B,1},{0xA640,0xA66E,1},{0xA67F,0xA69D,1},{0xA6A0,0xA6E5,1},
    {0xA6E6,0xA6EF,2},{0xA717,0xA71F,1},{0xA722,0xA788,1},{0xA78B,0xA7CA,1},{0xA7D0,0xA7D1,1},
    {0xA7D3,0xA7D3,1},{0xA7D5,0xA7D9,1},{0xA7F2,0xA801,1},{0xA803,0xA805,1},{0xA807,0xA80A,1},
    {0xA80C,0xA822,1},{0xA830,0xA835,2},{0xA840,0xA873,1},{0xA882,0xA8B3,1},{0xA8D0,0xA8D9,2},
    {0xA8F2,0xA8F7,1},{0xA8FB,0xA8FB,1},{0xA8FD,0xA8FE,1},{0xA900,0xA909,2},{0xA90A,0xA925,1},
    {0xA930,0xA946,1},{0xA960,0xA97C,1},{0xA984,0xA9B2,1},{0xA9CF,0xA9CF,1},{0xA9D0,0xA9D9,2},
    {0xA9E0,0xA9E4,1},{0xA9E6,0xA9EF,1},{0xA9F0,0xA9F9,2},{0xA9FA,0xA9FE,1},{0xAA00,0xAA28,1},
    {0xAA40,0xAA42,1},{0xAA44,0xAA4B,1},{0xAA50,0xAA59,2},{0xAA60,0xAA76,1},{0xAA7A,0xAA7A,1},
    {0xAA7E,0xAAAF,1},{0xAAB1,0xAAB1,1},{0xAAB5,0xAAB6,1},{0xAAB9,0xAABD,1},{0xAAC0,0xAAC0,1},
    {0xAAC2,0xAAC2,1},{0xAADB,0xAADD,1},{0xAAE0,0xAAEA,1},{0xAAF2,0xAAF4,1},{0xAB01,0xAB06,1},
    {0xAB09,0xAB0E,1},{0xAB11,0xAB16,1},{0xAB20,0xAB26,1},{0xAB28,0xAB2E,1},{0xAB30,0xAB5A,1},
    {0xAB5C,0xAB69,1},{0xAB70,0xABE2,1},{0xABF0,0xABF9,2},{0xAC00,0xD7A3,1},{0xD7B0,0xD7C6,1},
    {0xD7CB,0xD7FB,1},{0xF900,0xFA6D,1},{0xFA70,0xFAD9,1},{0xFB00,0xFB06,1},{0xFB13,0xFB17,1},
    {0xFB1D,0xFB1D,1},{0xFB1F,0xFB28,1},{0xFB2A,0xFB36,1},{0xFB38,0xFB3C,1},{0xFB3E,0xFB3E,1},
    {0xFB40,0xFB41,1},{0xFB43,0xFB44,1},{0xFB46,0xFBB1,1},{0xFBD3,0xFD3D,1},{0xFD50,0xFD8F,1},
    {0xFD92,0xFDC7,1},{0xFDF0,0xFDFB,1},{0xFE70,0xFE74,1},{0xFE76,0xFEFC,1},{0xFF10,0xFF19,2},
    {0xFF21,0xFF3A,1},{0xFF41,0xFF5A,1},{0xFF66,0xFFBE,1},{0xFFC2,0xFFC7,1},{0xFFCA,0xFFCF,1},
    {0xFFD2,0xFFD7,1},{0xFFDA,0xFFDC,1},{0x10000,0x1000B,1},{0x1000D,0x10026,1},{0x10028,0x1003A,1},
    {0x1003C,0x1003D,1},{0x1003F,0x1004D,1},{0x10050,0x1005D,1},{0x10080,0x100FA,1},{0x10107,0x10133,2},
    {0x10140,0x10178,2},{0x1018A,0x1018B,2},{0x10280,0x1029C,1},{0x102A0,0x102D0,1},{0x102E1,0x102FB,2},
    {0x10300,0x1031F,1},{0x10320,0x10323,2},{0x1032D,0x10340,1},{0x10341,0x10341,2},{0x10342,0x10349,1},
    {0x1034A,0x1034A,2},{0x10350,0x10375,1},{0x10380,0x1039D,1},{0x103A0,0x103C3,1},{0x103C8,0x103CF,1},
    {0x103D1,0x103D5,2},{0x10400,0x1049D,1},{0x104A0,0x104A9,2},{0x104B0,0x104D3,1},{0x104D8,0x104FB,1},
    {0x10500,0x10527,1},{0x10530,0x10563,1},{0x10570,0x1057A,1},{0x1057C,0x1058A,1},{0x1058C,0x10592,1},
    {0x10594,0x10595,1},{0x10597,0x105A1,1},{0x105A3,0x105B1,1},{0x105B3,0x105B9,1},{0x105BB,0x105BC,1},
    {0x10600,0x10736,1},{0x10740,0x10755,1},{0x10760,0x10767,1},{0x10780,0x10785,1},{0x10787,0x107B0,1},
    {0x107B2,0x107BA,1},{0x10800,0x10805,1},{0x10808,0x10808,1},{0x1080A,0x10835,1},{0x10837,0x10838,1},
    {0x1083C,0x1083C,1},{0x1083F,0x10855,1},{0x10858,0x1085F,2},{0x10860,0x10876,1},{0x10879,0x1087F,2},
    {0x10880,0x1089E,1},{0x108A7,0x108AF,2},{0x108E0,0x108F2,1},{0x108F4,0x108F5,1},{0x108FB,0x108FF,2},
    {0x10900,0x10915,1},{0x10916,0x1091B,2},{0x10920,0x10939,1},{0x10980,0x109B7,1},{0x109BC,0x109BD,2},
    {0x109BE,0x109BF,1},{0x109C0,0x109CF,2},{0x109D2,0x109FF,2},{0x10A00,0x10A00,1},{0x10A10,0x10A13,1},
    {0x10A15,0x10A17,1},{0x10A19,0x10A35,1},{0x10A40,0x10A48,2},{0x10A60,0x10A7C,1},{0x10A7D,0x10A7E,2},
    {0x10A80,0x10A9C,1},{0x10A9D,0x10A9F,2},{0x10AC0,0x10AC7,1},{0x10AC9,0x10AE4,1},{0x10AEB,0x10AEF,2},
    {0x10B00,0x10B35,1},{0x10B40,0x10B55,1},{0x10B58,0x10B5F,2},{0x10B60,0x10B72,1},{0x10B78,0x10B7F,2},
    {0x10B80,0x10B91,1},{0x10BA9,0x10BAF,2},{0x10C00,0x10C48,1},{0x10C80,0x10CB2,1},{0x10CC0,0x10CF2,1},
    {0x10CFA,0x10CFF,2},{0x10D00,0x10D23,1},{0x10D30,0x10D39,2},{0x10E60,0x10E7E,2},{0x10E80,0x10EA9,1},
    {0x10EB0,0x10EB1,1},{0x10F00,0x10F1C,1},{0x10F1D,0x10F26,2},{0x10F27,0x10F27,1},{0x10F30,0x10F45,1},
    {0x10F51,0x10F54,2},{0x10F70,0x10F81,1},{0x10FB0,0x10FC4,1},{0x10FC5,0x10FCB,2},{0x10FE0,0x10FF6,1},
    {0x11003,0x11037,1},{0x11052,0x1106F,2},{0x11071,0x11072,1},{0x11075,0x11075,1},{0x11083,0x110AF,1},
    {0x110D0,0x110E8,1},{0x110F0,0x110F9,2},{0x11103,0x11126,1},{0x11136,0x1113F,2},{0x11144,0x11144,1},
    {0x11147,0x11147,1},{0x11150,0x11172,1},{0x11176,0x11176,1},{0x11183,0x111B2,1},{0x111C1,0x111C4,1},
    {0x111D0,0x111D9,2},{0x111DA,0x111DA,1},{0x111DC,0x111DC,1},{0x111E1,0x111F4,2},{0x11200,0x11211,1},
    {0x11213,0x1122B,1},{0x1123F,0x11240,1},{0x11280,0x11286,1},{0x11288,0x11288,1},{0x1128A,0x1128D,1},
    {0x1128F,0x1129D,1},{0x1129F,0x112A8,1},{0x112B0,0x112DE,1},{0x112F0,0x112F9,2},{0x11305,0x1130C,1},
    {0x1130F,0x11310,1},{0x11313,0x11328,1},{0x1132A,0x11330,1},{0x11332,0x11333,1},{0x11335,0x11339,1},
    {0x1133D,0x1133D,1},{0x11350,0x11350,1},{0x1135D,0x11361,1},{0x11400,0x11434,1},{0x11447,0x1144A,1},
    {0x11450,0x11459,2},{0x1145F,0x11461,1},{0x11480,0x114AF,1},{0x114C4,0x114C5,1},{0x114C7,0x114C7,1},
    {0x114D0,0x114D9,2},{0x11580,0x115AE,1},{0x115D8,0x115DB,1},{0x11600,0x1162F,1},{0x11644,0x11644,1},
    {0x11650,0x11659,2},{0x11680,0x116AA,1},{0x116B8,0x116B8,1},{0x116C0,0x116C9,2},{0x11700,0x1171A,1},
    {0x11730,0x1173B,2},{0x11740,0x11746,1},{0x11800,0x1182B,1},{0x118A0,0x118DF,1},{0x118E0,0x118F2,2},
    {0x118FF,0x11906,1},{0x11909,0x11909,1},{0x1190C,0x11913,1},{0x11915,0x11916,1},{0x11918,0x1192F,1},
    {0x1193F,0x1193F,1},{0x11941,0x11941,1},{0x11950,0x11959,2},{0x119A0,0x119A7,1},{0x119AA,0x119D0,1},
    {0x119E1,0x119E1,1},{0x119E3,0x119E3,1},{0x11A00,0x11A00,1},{0x11A0B,0x11A32,1},{0x11A3A,0x11A3A,1},
    {0x11A50,0x11A50,1},{0x11A5C,0x11A89,1},{0x11A9D,0x11A9D,1},{0x11AB0,0x11AF8,1},{0x11C00,0x11C08,1},
    {0x11C0A,0x11C2E,1},{0x11C40,0x11C40,1},{0x11C50,0x11C6C,2},{0x11C72,0x11C8F,1},{0x11D00,0x11D06,1},
    {0x11D08,0x11D09,1},{0x11D0B,0x11D30,1},{0x11D46,0x11D46,1},{0x11D50,0x11D59,2},{0x11D60,0x11D65,1},
    {0x11D67,0x11D68,1},{0x11D6A,0x11D89,1},{0x11D98,0x11D98,1},{0x11DA0,0x11DA9,2},{0x11EE0,0x11EF2,1},
    {0x11F02,0x11F02,1},{0x11F04,0x11F10,1},{0x11F12,0x11F33,1},{0x11F50,0x11F59,2},{0x11FB0,0x11FB0,1},
    {0x11FC0,0x11FD4,2},{0x12000,0x12399,1},{0x12400,0x1246E,2},{0x12480,0x12543,1},{0x12F90,0x12FF0,1},
    {0x13000,0x1342F,1},{0x13441,0x13446,1},{0x14400,0x14646,1},{0x16800,0x16A38,1},{0x16A40,0x16A5E,1},
    {0x16A60,0x16A69,2},{0x16A70,0x16ABE,1},{0x16AC0,0x16AC9,2},{0x16AD0,0x16AED,1},{0x16B00,0x16B2F,1},
    {0x16B40,0x16B43,1},{0x16B50,0x16B59,2},{0x16B5B,0x16B61,2},{0x16B63,0x16B77,1},{0x16B7D,0x16B8F,1},
    {0x16E40,0x16E7F,1},{0x16E80,0x16E96,2},{0x16F00,0x16F4A,1},{0x16F50,0x16F50,1},{0x16F93,0x16F9F,1},
    {0x16FE0,0x16FE1,1},{0x16FE3,0x16FE3,1},{0x17000,0x187F7,1},{0x18800,0x18CD5,1},{0x18D00,0x18D08,1},
    {0x1AFF0,0x1AFF3,1},{0x1AFF5,0x1AFFB,1},{0x1AFFD,0x1AFFE,1},{0x1B000,0x1B122,1},{0x1B132,0x1B132,1},
    {0x1B150,0x1B152,1},{0x1B155,0x1B155,1},{0x1B164,0x1B167,1},{0x1B170,0x1B2FB,1},{0x1BC00,0x1BC6A,1},
    {0x1BC70,0x1BC7C,1},{0x1BC80,0x1BC88,1},{0x1BC90,0x1BC99,1},{0x1D2C0,0x1D2D3,2},{0x1D2E0,0x1D2F3,2},
    {0x1D360,0x1D378,2},{0x1D400,0x1D454,1},{0x1D456,0x1D49C,1},{0x1D49E,0x1D49F,1},{0x1D4A2,0x1D4A2,1},
    {0x1D4A5,0x1D4A6,1},{0x1D4A9,0x1D4AC,1},{0x1D4AE,0x1D4B9,1},{0x1D4BB,0x1D4BB,1},{0x1D4BD,0x1D4C3,1},
    {0x1D4C5,0x1D505,1},{0x1D507,0x1D50A,1},{0x1D50D,0x1D514,1},{0x1D516,0x1D51C,1},{0x1D51E,0x1D539,1},
    {0x1D53B,0x1D53E,1},{0x1D540,0x1D544,1},{0x1D546,0x1D546,1},{0x1D54A,0x1D550,1},{0x1D552,0x1D6A5,1},
    {0x1D6A8,0x1D6C0,1},{0x1D6C2,0x1D6DA,1},{0x1D6DC,0x1D6FA,1},{0x1D6FC,0x1D714,1},{0x1D716,0x1D734,1},
    {0x1D736,0x1D74E,1},{0x1D750,0x1D76E,1},{0x1D770,0x1D788,1},{0x1D78A,0x1D7A8,1},{0x1D7AA,0x1D7C2,1},
    {0x1D7C4,0x1D7CB,1},{0x1D7CE,0x1D7FF,2},{0x1DF00,0x1DF1E,1},{0x1DF25,0x1DF2A,1},{0x1E030,0x1E06D,1},
    {0x1E100,0x1E12C,1},{0x1E137,0x1E13D,1},{0x1E140,0x1E149,2},{0x1E14E,0x1E14E,1},{0x1E290,0x1E2AD,1},
    {0x1E2C0,0x1E2EB,1},{0x1E2F0,0x1E2F9,2},{0x1E4D0,0x1E4EB,1},{0x1E4F0,0x1E4F9,2},{0x1E7E0,0x1E7E6,1},
    {0x1E7E8,0x1E7EB,1},{0x1E7ED,0x1E7EE,1},{0x1E7F0,0x1E7FE,1},{0x1E800,0x1E8C4,1},{0x1E8C7,0x1E8CF,2},
    {0x1E900,0x1E943,1},{0x1E94B,0x1E94B,1},{0x1E950,0x1E959,2},{0x1EC71,0x1ECAB,2},{0x1ECAD,0x1ECAF,2},
    {0x1ECB1,0x1ECB4,2},{0x1ED01,0x1ED2D,2},{0x1ED2F,0x1ED3D,2},{0x1EE00,0x1EE03,1},{0x1EE05,0x1EE1F,1},
    {0x1EE21,0x1EE22,1},{0x1EE24,0x1EE24,1},{0x1EE27,0x1EE27,1},{0x1EE29,0x1EE32,1},{0x1EE34,0x1EE37,1},
    {0x1EE39,0x1EE39,1},{0x1EE3B,0x1EE3B,1},{0x1EE42,0x1EE42,1},{0x1EE47,0x1EE47,1},{0x1EE49,0x1EE49,1},
    {0x1EE4B,0x1EE4B,1},{0x1EE4D,0x1EE4F,1},{0x1EE51,0x1EE52,1},{0x1EE54,0x1EE54,1},{0x1EE57,0x1EE57,1},
    {0x1EE59,0x1EE59,1},{0x1EE5B,0x1EE5B,1},{0x1EE5D,0x1EE5D,1},{0x1EE5F,0x1EE5F,1},{0x1EE61,0x1EE62,1},
    {0x1EE64,0x1EE64,1},{0x1EE67,0x1EE6A,1},{0x1EE6C,0x1EE72,1},{0x1EE74,0x1EE77,1},{0x1EE79,0x1EE7C,1},
    {0x1EE7E,0x1EE7E,1},{0x1EE80,0x1EE89,1},{0x1EE8B,0x1EE9B,1},{0x1EEA1,0x1EEA3,1},{0x1EEA5,0x1EEA9,1},
    {0x1EEAB,0x1EEBB,1},{0x1F100,0x1F10C,2},{0x1FBF0,0x1FBF9,2},{0x20000,0x2A6DF,1},{0x2A700,0x2B739,1},
    {0x2B740,0x2B81D,1},{0x2B820,0x2CEA1,1},{0x2CEB0,0x2EBE0,1},{0x2F800,0x2FA1D,1},{0x30000,0x3134A,1},
    {0x31350,0x323AF,1},
};
/* White_Space (PropList.txt): what \s matches in the reference regex engines. */
static const uint32_t distill__tk_uni_ws[11][2] = {
    {0x9,0xD},{0x20,0x20},{0x85,0x85},{0xA0,0xA0},{0x1680,0x1680},{0x2000,0x200A},{0x2028,0x2028},{0x2029,0x2029},{0x202F,0x202F},{0x205F,0x205F},{0x3000,0x3000},
};
/* NFC_Quick_Check = No or Maybe (DerivedNormalizationProps.txt): text without these is NFC. */
static const uint32_t distill__tk_uni_nfcqc[112][2] = {
    {0x300,0x304},{0x306,0x30C},{0x30F,0x30F},{0x311,0x311},{0x313,0x314},{0x31B,0x31B},
    {0x323,0x328},{0x32D,0x32E},{0x330,0x331},{0x338,0x338},{0x340,0x345},{0x374,0x374},
    {0x37E,0x37E},{0x387,0x387},{0x653,0x655},{0x93C,0x93C},{0x958,0x95F},{0x9BE,0x9BE},
    {0x9D7,0x9D7},{0x9DC,0x9DD},{0x9DF,0x9DF},{0xA33,0xA33},{0xA36,0xA36},{0xA59,0xA5B},
    {0xA5E,0xA5E},{0xB3E,0xB3E},{0xB56,0xB57},{0xB5C,0xB5D},{0xBBE,0xBBE},{0xBD7,0xBD7},
    {0xC56,0xC56},{0xCC2,0xCC2},{0xCD5,0xCD6},{0xD3E,0xD3E},{0xD57,0xD57},{0xDCA,0xDCA},
    {0xDCF,0xDCF},{0xDDF,0xDDF},{0xF43,0xF43},{0xF4D,0xF4D},{0xF52,0xF52},{0xF57,0xF57},
    {0xF5C,0xF5C},{0xF69,0xF69},{0xF73,0xF73},{0xF75,0xF76},{0xF78,0xF78},{0xF81,0xF81},
    {0xF93,0xF93},{0xF9D,0xF9D},{0xFA2,0xFA2},{0xFA7,0xFA7},{0xFAC,0xFAC},{0xFB9,0xFB9},
    {0x102E,0x102E},{0x1161,0x1175},{0x11A8,0x11C2},{0x1B35,0x1B35},{0x1F71,0x1F71},{0x1F73,0x1F73},
    {0x1F75,0x1F75},{0x1F77,0x1F77},{0x1F79,0x1F79},{0x1F7B,0x1F7B},{0x1F7D,0x1F7D},{0x1FBB,0x1FBB},
    {0x1FBE,0x1FBE},{0x1FC9,0x1FC9},{0x1FCB,0x1FCB},{0x1FD3,0x1FD3},{0x1FDB,0x1FDB},{0x1FE3,0x1FE3},
    {0x1FEB,0x1FEB},{0x1FEE,0x1FEF},{0x1FF9,0x1FF9},{0x1FFB,0x1FFB},{0x1FFD,0x1FFD},{0x2000,0x2001},
    {0x2126,0x2126},{0x212A,0x212B},{0x2329,0x232A},{0x2ADC,0x2ADC},{0x3099,0x309A},{0xF900,0xFA0D},
    {0xFA10,0xFA10},{0xFA12,0xFA12},{0xFA15,0xFA1E},{0xFA20,0xFA20},{0xFA22,0xFA22},{0xFA25,0xFA26},
    {0xFA2A,0xFA6D},{0xFA70,0xFAD9},{0xFB1D,0xFB1D},{0xFB1F,0xFB1F},{0xFB2A,0xFB36},{0xFB38,0xFB3C},
    {0xFB3E,0xFB3E},{0xFB40,0xFB41},{0xFB43,0xFB44},{0xFB46,0xFB4E},{0x110BA,0x110BA},{0x11127,0x11127},
    {0x1133E,0x1133E},{0x11357,0x11357},{0x114B0,0x114B0},{0x114BA,0x114BA},{0x114BD,0x114BD},{0x115AF,0x115AF},
    {0x11930,0x11930},{0x1D15E,0x1D164},{0x1D1BB,0x1D1C0},{0x2F800,0x2FA1D},
};
/* END GENERATED UNICODE TABLES */

static const unsigned char distill__tk_ascii_class[128] = {
    0,0,0,0,0,0,0,0,0,3,3,3,3,3,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 2,2,2,2,2,2,2,2,2,2,0,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0};

static int distill__tk_class_of(uint32_t cp) {
    size_t lo = 0, hi = sizeof distill__tk_uni_ln / sizeof distill__tk_uni_ln[0], i;
    if (cp < 128) return distill__tk_ascii_class[cp];
    for (i = 0; i < sizeof distill__tk_uni_ws / sizeof distill__tk_uni_ws[0]; i++)
        if (cp >= distill__tk_uni_ws[i][0] && cp <= distill__tk_uni_ws[i][1]) return DISTILL__C_WS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < distill__tk_uni_ln[mid][0]) hi = mid;
        else if (cp > distill__tk_uni_ln[mid][1]) lo = mid + 1;
        else return (int)distill__tk_uni_ln[mid][2];
    }
    return DISTILL__C_OTHER;
}

/* Length of the UTF-8 character at s[0..n) (n >= 1) and its code point; an invalid or truncated
   sequence (overlong, surrogate, > U+10FFFF) counts as one byte with cp = 0xFFFFFFFF. */
static size_t distill__tk_utf8(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF && n >= 2 && (s[1] & 0xC0) == 0x80) {
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        uint32_t v = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) { *cp = v; return 3; }
    }
    if (c >= 0xF0 && c <= 0xF4 && n >= 4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
        (s[3] & 0xC0) == 0x80) {
        uint32_t v = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                     (s[3] & 0x3Fu);
        if (v >= 0x10000 && v <= 0x10FFFF) { *cp = v; return 4; }
    }
    *cp = 0xFFFFFFFFu;
    return 1;
}

/* If s[0..n) is a proper prefix of some valid UTF-8 character, the length of that character;
   else 0. Used by the streaming decoder to hold back half characters. */
static size_t distill__tk_utf8_need(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need, i;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n >= need) return 0;
    for (i = 1; i < n; i++) {
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return 0;
    }
    return need;
}

/* The character at s[i] (i < n): its byte length, and its class in *cls. */
static size_t distill__tk_char(const unsigned char *s, size_t n, size_t i, int *cls) {
    uint32_t cp;
    size_t k;
    if (s[i] < 0x80) { *cls = distill__tk_ascii_class[s[i]]; return 1; }
    k = distill__tk_utf8(s + i, n - i, &cp);
    *cls = cp == 0xFFFFFFFFu ? DISTILL__C_OTHER : distill__tk_class_of(cp);
    return k;
}

/* End of the run of characters of class cls starting at i (at most max characters). */
static size_t distill__tk_run(const unsigned char *s, size_t n, size_t i, int cls, size_t max) {
    size_t count = 0;
    while (i < n && count < max) {
        int c;
        size_t k;
        if (s[i] < 0x80) {
            if (distill__tk_ascii_class[s[i]] != cls) break;
            i++;
        } else {
            k = distill__tk_char(s, n, i, &c);
            if (c != cls) break;
            i += k;
        }
        count++;
    }
    return i;
}

/* The white-space alternatives shared by both patterns, at i where a space character starts:
   \s+(?!\S) takes the run but leaves its last character to the next chunk when something
   follows (so " word" keeps its space), and \s+ takes a single space before a non-space. */
static size_t distill__tk_ws_chunk(const unsigned char *s, size_t n, size_t i) {
    size_t e = i, last = i;
    int c;
    while (e < n) {
        size_t k = distill__tk_char(s, n, e, &c);
        if (c != DISTILL__C_WS) break;
        last = e;
        e += k;
    }
    if (e == n || last == i) return e;
    return last;
}

/* GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
   Returns the end of the chunk that starts at i. */
static size_t distill__tk_pretok_gpt2(const unsigned char *s, size_t n, size_t i) {
    int c;
    if (s[i] == '\'' && i + 1 < n) {
        unsigned c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return i + 3;
    }
    if (s[i] == ' ' && i + 1 < n) {              /* the optional leading space */
        distill__tk_char(s, n, i + 1, &c);
        if (c != DISTILL__C_WS) return distill__tk_run(s, n, i + 1, c, (size_t)-1);
        return distill__tk_ws_chunk(s, n, i);
    }
    distill__tk_char(s, n, i, &c);
    if (c == DISTILL__C_WS) return distill__tk_ws_chunk(s, n, i);
    return distill__tk_run(s, n, i, c, (size_t)-1);   /* letters, numbers or other */
}

/* The optional case-insensitive contraction of cl100k: '(?i:[sdmt]|ll|ve|re). Returns its end
   or 0. Case folding of s also admits U+017F LATIN SMALL LETTER LONG S. */
static size_t distill__tk_contraction_ci(const unsigned char *s, size_t n, size_t i) {
    unsigned c1, c2;
    if (i + 1 >= n) return 0;
    c1 = s[i + 1] | 0x20u;   /* ASCII lower case (only compared against letters) */
    c2 = i + 2 < n ? (s[i + 2] | 0x20u) : 0;
    if (c1 == 's' || c1 == 'd' || c1 == 'm' || c1 == 't') return i + 2;
    if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return i + 3;   /* 'ſ */
    if ((c1 == 'l' && c2 == 'l') || (c1 == 'v' && c2 == 'e') || (c1 == 'r' && c2 == 'e'))
        return i + 3;
    return 0;
}

/* cl100k:  '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*
            |\s*[\r\n]|\s+(?!\S)|\s+            (QWEN2: \p{N} one digit at a time) */
static size_t distill__tk_pretok_cl100k(const unsigned char *s, size_t n, size_t i, size_t max_digits) {
    int c, c2 = -1;
    size_t k, e;
    unsigned b = s[i];
    if (b == '\'' && (e = distill__tk_contraction_ci(s, n, i)) != 0) return e;
    k = distill__tk_char(s, n, i, &c);
    if (c == DISTILL__C_L) return distill__tk_run(s, n, i, DISTILL__C_L, (size_t)-1);
    if (i + k < n) distill__tk_char(s, n, i + k, &c2);
    /* one non-letter, non-number, non-newline character glued to the letters that follow */
    if (c != DISTILL__C_N && b != '\r' && b != '\n' && c2 == DISTILL__C_L)
        return distill__tk_run(s, n, i + k, DISTILL__C_L, (size_t)-1);
    if (c == DISTILL__C_N) return distill__tk_run(s, n, i, DISTILL__C_N, max_digits);
    if (c == DISTILL__C_OTHER || (b == ' ' && c2 == DISTILL__C_OTHER)) {
        e = distill__tk_run(s, n, c == DISTILL__C_OTHER ? i : i + 1, DISTILL__C_OTHER, (size_t)-1);
        while (e < n && (s[e] == '\r' || s[e] == '\n')) e++;
        return e;
    }
    /* white space: up to the last newline of the run if it has one */
    {
        size_t p = i, nl = 0;
        int have_nl = 0;
        while (p < n) {
            int cc;
            size_t kk = distill__tk_char(s, n, p, &cc);
            if (cc != DISTILL__C_WS) break;
            if (s[p] == '\r' || s[p] == '\n') { nl = p + 1; have_nl = 1; }
            p += kk;
        }
        if (have_nl) return nl;
    }
    return distill__tk_ws_chunk(s, n, i);
}

/* End of the chunk starting at i < n. */
static size_t distill__tk_pretok(int pattern, const unsigned char *s, size_t n, size_t i) {
    switch (pattern) {
    case DISTILL_PATTERN_GPT2: return distill__tk_pretok_gpt2(s, n, i);
    case DISTILL_PATTERN_CL100K: return distill__tk_pretok_cl100k(s, n, i, 3);
    case DISTILL_PATTERN_QWEN2: return distill__tk_pretok_cl100k(s, n, i, 1);
    default: return n;
    }
}

DISTILL_API const char *distill_pattern_name(int pattern) {
    switch (pattern) {
    case DISTILL_PATTERN_NONE: return "none";
    case DISTILL_PATTERN_GPT2: return "gpt2";
    case DISTILL_PATTERN_CL100K: return "cl100k";
    case DISTILL_PATTERN_QWEN2: return "qwen2";
    default: return NULL;
    }
}

DISTILL_API int distill_pattern_from_name(const char *name) {
    int p;
    for (p = 0; p <= DISTILL_PATTERN_QWEN2; p++)
        if (!strcmp(name, distill_pattern_name(p))) return p;
    return -1;
}

static const char *const distill__tk_default_specials[5] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"};

DISTILL_API const char *const *distill_tokenizer_default_specials(int *n) {
    if (n) *n = 5;
    return distill__tk_default_specials;
}

/* ---- The tokenizer object --------------------------------------------------------------- */
enum { DISTILL__TK_NONE = 0, DISTILL__TK_BYTE = 1, DISTILL__TK_MERGE = 2, DISTILL__TK_SPECIAL = 3,
       DISTILL__TK_PLAIN = 4 };
enum { DISTILL__KIND_BPE = 0, DISTILL__KIND_LLAMA = 1 };

/* The chunk cache: real text repeats its words, so the ids of short chunks are remembered in a
   direct-mapped table. Slots are guarded by striped mutexes so that several threads can encode
   with one tokenizer: a slot is copied out under its lock, a miss computes outside any lock, and
   nobody ever waits (a busy stripe is just a miss), so contention costs no sleeping. */
#define DISTILL__CACHE_SLOTS 16384
#define DISTILL__CACHE_KEY 22
#define DISTILL__CACHE_IDS 10
#define DISTILL__CACHE_LOCKS 256
typedef struct distill__tk_cslot {
    uint32_t hash;
    unsigned char klen, nids;
    unsigned char key[DISTILL__CACHE_KEY];
    int32_t ids[DISTILL__CACHE_IDS];
} distill__tk_cslot;
typedef struct distill__tk_tcache {
    distill__tk_cslot *slots;
#ifdef DISTILL__TOK_LOCKS
    pthread_mutex_t locks[DISTILL__CACHE_LOCKS];
#endif
} distill__tk_tcache;

struct distill_tokenizer {
    int kind, pattern;
    int32_t n_vocab, cap;              /* ids are 0..n_vocab-1                                  */
    uint32_t *tok_off, *tok_len;       /* each token's bytes in pool                            */
    unsigned char *tok_flag;           /* DISTILL__TK_*                                         */
    char *pool;
    size_t pool_n, pool_cap;
    int32_t byte_id[256];              /* the token of each single byte, -1 if none             */
    int32_t n_merges, merges_cap;      /* merge r: (m_left[r], m_right[r]) -> m_id[r]            */
    int32_t *m_left, *m_right, *m_id;
    uint64_t *ph_key;                  /* hash (left, right) -> rank; ph_rank -1 = empty slot   */
    int32_t *ph_rank;
    size_t ph_cap, ph_n;
    int32_t *bh_id;                    /* hash token bytes -> id; -1 = empty slot               */
    size_t bh_cap;
    int32_t n_special, special_cap;
    int32_t *special_ids;              /* sorted longest first, for longest-match             */
    unsigned char special_first[256];  /* which bytes can start a special token               */
    float *scores;                     /* llama2.c: piece scores                                */
    int16_t *byteval;                  /* llama2.c: the byte of a <0xXX> piece, else -1         */
    int32_t bos_id, eos_id, space_id;
    uint32_t max_piece;                /* longest token in bytes                                */
    int whole_first;                   /* HF ignore_merges: a chunk that is a token stays whole */
    int nfc;                           /* HF NFC normalizer: encode refuses text not proven NFC */
    distill__tk_tcache *cache;
};

static uint64_t distill__tk_hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t distill__tk_hash_pair(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

static distill_tokenizer *distill__tk_new(int kind, int pattern) {
    distill_tokenizer *t = (distill_tokenizer *)DISTILL_MALLOC(sizeof *t);
    int i;
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->pattern = pattern;
    for (i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->bos_id = t->eos_id = t->space_id = -1;
    return t;
}

static void distill__tk_cache_free(distill__tk_tcache *c) {
#ifdef DISTILL__TOK_LOCKS
    int i;
#endif
    if (!c) return;
#ifdef DISTILL__TOK_LOCKS
    for (i = 0; i < DISTILL__CACHE_LOCKS; i++) pthread_mutex_destroy(&c->locks[i]);
#endif
    DISTILL_FREE(c->slots);
    DISTILL_FREE(c);
}

DISTILL_API void distill_tokenizer_free(distill_tokenizer *t) {
    if (!t) return;
    DISTILL_FREE(t->tok_off); DISTILL_FREE(t->tok_len); DISTILL_FREE(t->tok_flag);
    DISTILL_FREE(t->pool);
    DISTILL_FREE(t->m_left); DISTILL_FREE(t->m_right); DISTILL_FREE(t->m_id);
    DISTILL_FREE(t->ph_key); DISTILL_FREE(t->ph_rank); DISTILL_FREE(t->bh_id);
    DISTILL_FREE(t->special_ids); DISTILL_FREE(t->scores); DISTILL_FREE(t->byteval);
    distill__tk_cache_free(t->cache);
    DISTILL_FREE(t);
}

/* Grow an array of n_old items of `size` bytes to n_new items (zeroing the new part). */
static int distill__tk_grow(void **p, size_t n_old, size_t n_new, size_t size) {
    size_t bytes;
    void *q;
    if (!distill__mul_size(n_new, size, &bytes)) return -1;
    q = DISTILL_REALLOC(*p, bytes ? bytes : 1);
    if (!q) return -1;
    if (n_new > n_old) memset((char *)q + n_old * size, 0, (n_new - n_old) * size);
    *p = q;
    return 0;
}

/* Define token `id` as the given bytes (ids may come in any order; gaps stay undefined). */
static int distill__tk_set(distill_tokenizer *t, int32_t id, const void *bytes, size_t len,
                            int flag) {
    if (id < 0 || id >= (1 << 24)) return -1;     /* 16M tokens is far beyond any real vocab */
    if (len > 0xFFFFFFu) return -1;
    if (id >= t->cap) {
        int32_t cap = t->cap ? t->cap : 512;
        while (cap <= id) cap *= 2;
        if (distill__tk_grow((void **)&t->tok_off, (size_t)t->cap, (size_t)cap, sizeof(uint32_t)) ||
            distill__tk_grow((void **)&t->tok_len, (size_t)t->cap, (size_t)cap, sizeof(uint32_t)) ||
            distill__tk_grow((void **)&t->tok_flag, (size_t)t->cap, (size_t)cap, 1))
            return -1;
        t->cap = cap;
    }
    if (t->pool_n + len > t->pool_cap || !t->pool) {   /* never NULL, even for empty tokens */
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_n + len) cap *= 2;
        if (cap > 0xFFFFFFFFu) return -1;
        if (distill__tk_grow((void **)&t->pool, t->pool_cap, cap, 1)) return -1;
        t->pool_cap = cap;
    }
    if (len) memcpy(t->pool + t->pool_n, bytes, len);
    t->tok_off[id] = (uint32_t)t->pool_n;
    t->tok_len[id] = (uint32_t)len;
    t->tok_flag[id] = (unsigned char)flag;
    t->pool_n += len;
    if (id >= t->n_vocab) t->n_vocab = id + 1;
    if (len > t->max_piece) t->max_piece = (uint32_t)len;
    if (flag == DISTILL__TK_BYTE && len == 1 && t->byte_id[(unsigned char)*(const char *)bytes] < 0)
        t->byte_id[(unsigned char)*(const char *)bytes] = id;
    return 0;
}

static int32_t distill__tk_pair_rank(const distill_tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = t->ph_cap - 1, h;
    if (!t->ph_cap) return -1;
    for (h = distill__tk_hash_pair(key, mask);; h = (h + 1) & mask) {
        int32_t rk = t->ph_rank[h];
        if (rk < 0) return -1;
        if (t->ph_key[h] == key) return rk;
    }
}

static int distill__tk_ph_insert(uint64_t *keys, int32_t *ranks, size_t cap, uint64_t key, int32_t rk) {
    size_t mask = cap - 1, h;
    for (h = distill__tk_hash_pair(key, mask);; h = (h + 1) & mask) {
        if (ranks[h] < 0) { keys[h] = key; ranks[h] = rk; return 0; }
        if (keys[h] == key) return -2;
    }
}

/* Append merge (l, r) -> id. Returns 0, -1 out of memory, -2 if the pair is already a merge. */
static int distill__tk_add_merge(distill_tokenizer *t, int32_t l, int32_t r, int32_t id) {
    int rc;
    if (t->n_merges == t->merges_cap) {
        int32_t cap = t->merges_cap ? t->merges_cap * 2 : 1024;
        if (distill__tk_grow((void **)&t->m_left, (size_t)t->merges_cap, (size_t)cap, 4) ||
            distill__tk_grow((void **)&t->m_right, (size_t)t->merges_cap, (size_t)cap, 4) ||
            distill__tk_grow((void **)&t->m_id, (size_t)t->merges_cap, (size_t)cap, 4))
            return -1;
        t->merges_cap = cap;
    }
    if ((t->ph_n + 1) * 2 > t->ph_cap) {   /* keep the pair table at most half full */
        size_t cap = t->ph_cap ? t->ph_cap * 2 : 2048, i;
        uint64_t *keys = (uint64_t *)DISTILL_MALLOC(cap * sizeof(uint64_t));
        int32_t *ranks = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
        if (!keys || !ranks) { DISTILL_FREE(keys); DISTILL_FREE(ranks); return -1; }
        for (i = 0; i < cap; i++) ranks[i] = -1;
        for (i = 0; i < t->ph_cap; i++)
            if (t->ph_rank[i] >= 0) distill__tk_ph_insert(keys, ranks, cap, t->ph_key[i], t->ph_rank[i]);
        DISTILL_FREE(t->ph_key); DISTILL_FREE(t->ph_rank);
        t->ph_key = keys; t->ph_rank = ranks; t->ph_cap = cap;
    }
    rc = distill__tk_ph_insert(t->ph_key, t->ph_rank, t->ph_cap,
                            ((uint64_t)(uint32_t)l << 32) | (uint32_t)r, t->n_merges);
    if (rc) return rc;
    t->ph_n++;
    t->m_left[t->n_merges] = l;
    t->m_right[t->n_merges] = r;
    t->m_id[t->n_merges] = id;
    t->n_merges++;
    return 0;
}

/* Id of the token with exactly these bytes (llama2.c: this raw piece), or -1. */
static int32_t distill__tk_bytes_id(const distill_tokenizer *t, const void *p, size_t n) {
    size_t mask = t->bh_cap - 1, h;
    if (!t->bh_cap) return -1;
    for (h = (size_t)distill__tk_hash_bytes((const unsigned char *)p, n) & mask;; h = (h + 1) & mask) {
        int32_t id = t->bh_id[h];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && !memcmp(t->pool + t->tok_off[id], p, n)) return id;
    }
}

/* After all tokens, merges and specials are in: build the lookup tables and the cache. The
   lowest id wins among tokens with equal bytes; special tokens are looked up separately. */
static int distill__tk_finalize(distill_tokenizer *t) {
    size_t cap = 1024, i;
    int32_t id, a, b;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    DISTILL_FREE(t->bh_id);
    t->bh_id = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
    if (!t->bh_id) return -1;
    t->bh_cap = cap;
    for (i = 0; i < cap; i++) t->bh_id[i] = -1;
    for (id = 0; id < t->n_vocab; id++) {
        size_t h;
        if (t->tok_flag[id] == DISTILL__TK_NONE || t->tok_flag[id] == DISTILL__TK_SPECIAL) continue;
        if (distill__tk_bytes_id(t, t->pool + t->tok_off[id], t->tok_len[id]) >= 0) continue;
        for (h = (size_t)distill__tk_hash_bytes((const unsigned char *)t->pool + t->tok_off[id],
                                             t->tok_len[id]) & (cap - 1);
             t->bh_id[h] >= 0; h = (h + 1) & (cap - 1)) {}
        t->bh_id[h] = id;
    }
    /* specials: longest first, so "<|im_start|>" wins over a hypothetical "<|im" */
    for (a = 1; a < t->n_special; a++) {
        int32_t x = t->special_ids[a];
        for (b = a; b > 0 && t->tok_len[t->special_ids[b - 1]] < t->tok_len[x]; b--)
            t->special_ids[b] = t->special_ids[b - 1];
        t->special_ids[b] = x;
    }
    memset(t->special_first, 0, sizeof t->special_first);
    for (a = 0; a < t->n_special; a++)
        if (t->tok_len[t->special_ids[a]])
            t->special_first[(unsigned char)t->pool[t->tok_off[t->special_ids[a]]]] = 1;
    if (t->kind == DISTILL__KIND_BPE) {
        t->eos_id = -1;
        for (a = 0; a < t->n_special; a++)
            if (t->tok_len[t->special_ids[a]] == 13 &&
                !memcmp(t->pool + t->tok_off[t->special_ids[a]], "<|endoftext|>", 13))
                t->eos_id = t->special_ids[a];
    }
    if (!t->cache) {
        distill__tk_tcache *c = (distill__tk_tcache *)DISTILL_MALLOC(sizeof *c);
        int k;
        if (!c) return -1;
        c->slots = (distill__tk_cslot *)DISTILL_MALLOC(DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
        if (!c->slots) { DISTILL_FREE(c); return -1; }
        memset(c->slots, 0, DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
#ifdef DISTILL__TOK_LOCKS
        for (k = 0; k < DISTILL__CACHE_LOCKS; k++) pthread_mutex_init(&c->locks[k], NULL);
#endif
        (void)k;
        t->cache = c;
    } else {
        memset(t->cache->slots, 0, DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
    }
    return 0;
}

static int distill__tk_add_special_raw(distill_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (distill__tk_set(t, id, s, n, DISTILL__TK_SPECIAL)) return -1;
    if (t->n_special == t->special_cap) {
        int32_t cap = t->special_cap ? t->special_cap * 2 : 16;
        if (distill__tk_grow((void **)&t->special_ids, (size_t)t->special_cap, (size_t)cap, 4)) return -1;
        t->special_cap = cap;
    }
    t->special_ids[t->n_special++] = id;
    return 0;
}

static int32_t distill__tk_special_id(const distill_tokenizer *t, const char *s, size_t n) {
    int32_t a;
    for (a = 0; a < t->n_special; a++) {
        int32_t id = t->special_ids[a];
        if (t->tok_len[id] == n && !memcmp(t->pool + t->tok_off[id], s, n)) return id;
    }
    return -1;
}

DISTILL_API int32_t distill_tokenizer_add_special(distill_tokenizer *t, const char *text,
                                                  distill_error *err) {
    size_t n = strlen(text);
    int32_t id = distill__tk_special_id(t, text, n);
    if (id >= 0) return id;
    if (n == 0) return distill__err(err, "tokenizer: a special token cannot be empty");
    id = t->n_vocab;
    if (distill__tk_add_special_raw(t, id, text, n) || distill__tk_finalize(t))
        return distill__err(err, "tokenizer: out of memory adding special token '%s'", text);
    return id;
}

DISTILL_API int distill_tokenizer_vocab_size(const distill_tokenizer *t) { return t->n_vocab; }
DISTILL_API int distill_tokenizer_pattern(const distill_tokenizer *t) { return t->pattern; }
DISTILL_API int distill_tokenizer_n_merges(const distill_tokenizer *t) { return t->n_merges; }
DISTILL_API int32_t distill_tokenizer_bos_id(const distill_tokenizer *t) { return t->bos_id; }
DISTILL_API int32_t distill_tokenizer_eos_id(const distill_tokenizer *t) { return t->eos_id; }
DISTILL_API int distill_tokenizer_is_llama(const distill_tokenizer *t) {
    return t->kind == DISTILL__KIND_LLAMA;
}
DISTILL_API int distill_tokenizer_is_special(const distill_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->tok_flag[id] == DISTILL__TK_SPECIAL;
}
DISTILL_API int distill_tokenizer_merge(const distill_tokenizer *t, int r, int32_t *left,
                                        int32_t *right, int32_t *result) {
    if (r < 0 || r >= t->n_merges) return -1;
    if (left) *left = t->m_left[r];
    if (right) *right = t->m_right[r];
    if (result) *result = t->m_id[r];
    return 0;
}

DISTILL_API int32_t distill_tokenizer_token_id(const distill_tokenizer *t, const char *text) {
    size_t n = strlen(text);
    int32_t id = distill__tk_special_id(t, text, n);
    return id >= 0 ? id : distill__tk_bytes_id(t, text, n);
}

static const unsigned char distill__tk_byte_values[256] = {
    0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,
    32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,
    62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,
    92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,
    116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,
    138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,
    160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,
    182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,
    204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,
    226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,
    248,249,250,251,252,253,254,255};

DISTILL_API const char *distill_tokenizer_token_bytes(const distill_tokenizer *t, int32_t id,
                                                      size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->tok_flag[id] == DISTILL__TK_NONE) {
        if (len) *len = 0;
        return NULL;
    }
    if (t->byteval && t->byteval[id] >= 0) {     /* llama2.c <0xXX> piece: the raw byte */
        if (len) *len = 1;
        return (const char *)distill__tk_byte_values + t->byteval[id];
    }
    if (len) *len = t->tok_len[id];
    return t->pool + t->tok_off[id];
}

/* ---- Encoding ------------------------------------------------------------------------- */
/* Per-call scratch memory (so that encoding needs no locks except the cache's). */
typedef struct distill__tk_hent {
    uint64_t ord;                      /* priority << 32 | position: lowest pops first        */
    int32_t l, r, res;                 /* the pair it was made for, and the merged token      */
} distill__tk_hent;
typedef struct distill__tk_scratch {
    int32_t *ids, *prv, *nxt;
    uint64_t *key;
    distill__tk_hent *heap;
    size_t cap, hcap;
    char *cat;                         /* llama2.c: concatenation of two pieces               */
    size_t catcap;
} distill__tk_scratch;

static void distill__tk_scratch_free(distill__tk_scratch *s) {
    DISTILL_FREE(s->ids); DISTILL_FREE(s->prv); DISTILL_FREE(s->nxt); DISTILL_FREE(s->key);
    DISTILL_FREE(s->heap); DISTILL_FREE(s->cat);
    memset(s, 0, sizeof *s);
}

static int distill__tk_scratch_need(distill__tk_scratch *s, size_t n) {
    size_t cap = s->cap ? s->cap : 64;
    if (n <= s->cap) return 0;
    while (cap < n) cap *= 2;
    if (distill__tk_grow((void **)&s->ids, s->cap, cap, 4) || distill__tk_grow((void **)&s->prv, s->cap, cap, 4) ||
        distill__tk_grow((void **)&s->nxt, s->cap, cap, 4) || distill__tk_grow((void **)&s->key, s->cap, cap, 8))
        return -1;
    s->cap = cap;
    return 0;
}

#define DISTILL__NO_PAIR UINT64_MAX

/* Priority of merging tokens l and r (lower merges first), and the token it makes.
   BPE: the merge's rank. llama2.c: the score of the piece l+r, highest first (mapped to an
   unsigned key in reverse order). DISTILL__NO_PAIR when the pair does not merge. */
static uint64_t distill__tk_pair_key(const distill_tokenizer *t, distill__tk_scratch *s, int32_t l,
                                  int32_t r, int32_t *res) {
    if (t->kind == DISTILL__KIND_BPE) {
        int32_t rk = distill__tk_pair_rank(t, l, r);
        if (rk < 0) return DISTILL__NO_PAIR;
        *res = t->m_id[rk];
        return (uint64_t)rk;
    } else {
        size_t a = t->tok_len[l], b = t->tok_len[r];
        int32_t id;
        float sc;
        uint32_t u;
        if (a + b > s->catcap) {
            size_t cap = (a + b) * 2;
            if (distill__tk_grow((void **)&s->cat, s->catcap, cap, 1)) return DISTILL__NO_PAIR;
            s->catcap = cap;
        }
        memcpy(s->cat, t->pool + t->tok_off[l], a);
        memcpy(s->cat + a, t->pool + t->tok_off[r], b);
        id = distill__tk_bytes_id(t, s->cat, a + b);
        if (id < 0) return DISTILL__NO_PAIR;
        sc = t->scores[id];
        if (!(sc > -1e10f)) return DISTILL__NO_PAIR;   /* run.c's starting best score */
        memcpy(&u, &sc, 4);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   /* order-preserving float -> uint */
        *res = id;
        return (uint64_t)(uint32_t)~u;
    }
}

static void distill__tk_heap_push(distill__tk_hent *h, size_t *n, distill__tk_hent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].ord <= e.ord) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static distill__tk_hent distill__tk_heap_pop(distill__tk_hent *h, size_t *n) {
    distill__tk_hent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].ord < h[c].ord) c++;
        if (last.ord <= h[c].ord) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Apply the merges to s->ids[0..n): the lowest-priority adjacent pair merges first, the leftmost
   one on ties, until no pair merges. Appends the result to out.
   Short sequences (nearly every chunk of real text) use a plain scan over an array of pair
   priorities: O(n) per merge but tiny n. Longer ones use a doubly linked list of tokens and a
   min-heap of candidate pairs with lazy deletion: a popped entry is used only if both of its
   tokens are still alive and unchanged, so the whole thing is O(n log n). */
static int distill__tk_bpe_merge(const distill_tokenizer *t, distill__tk_scratch *s, size_t n,
                              distill_ids *out) {
    int32_t *ids = s->ids;
    size_t i;
    if (n <= 24) {
        uint64_t *key = s->key;
        int32_t res[24];
        size_t m = n;
        for (i = 0; i + 1 < m; i++) key[i] = distill__tk_pair_key(t, s, ids[i], ids[i + 1], &res[i]);
        while (m > 1) {
            size_t best = 0;
            for (i = 1; i + 1 < m; i++)
                if (key[i] < key[best]) best = i;
            if (key[best] == DISTILL__NO_PAIR) break;
            ids[best] = res[best];
            for (i = best + 1; i + 1 < m; i++) ids[i] = ids[i + 1];
            for (i = best + 1; i + 2 < m; i++) { key[i] = key[i + 1]; res[i] = res[i + 1]; }
            m--;
            if (best > 0) key[best - 1] = distill__tk_pair_key(t, s, ids[best - 1], ids[best], &res[best - 1]);
            if (best + 1 < m) key[best] = distill__tk_pair_key(t, s, ids[best], ids[best + 1], &res[best]);
        }
        for (i = 0; i < m; i++)
            if (distill_ids_push(out, ids[i])) return -1;
        return 0;
    } else {
        int32_t *prv = s->prv, *nxt = s->nxt;
        size_t hn = 0;
        int32_t p;
        if (n > s->hcap) {
            if (distill__tk_grow((void **)&s->heap, s->hcap, n * 2, sizeof(distill__tk_hent))) return -1;
            s->hcap = n * 2;
        }
        for (i = 0; i < n; i++) { prv[i] = (int32_t)i - 1; nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1; }
        for (i = 0; i + 1 < n; i++) {
            distill__tk_hent e;
            uint64_t k = distill__tk_pair_key(t, s, ids[i], ids[i + 1], &e.res);
            if (k == DISTILL__NO_PAIR) continue;
            e.ord = (k << 32) | i; e.l = ids[i]; e.r = ids[i + 1];
            distill__tk_heap_push(s->heap, &hn, e);
        }
        while (hn) {
            distill__tk_hent e = distill__tk_heap_pop(s->heap, &hn);
            int32_t a = (int32_t)(e.ord & 0xFFFFFFFFu), b = nxt[a], side;
            if (ids[a] != e.l || b < 0 || ids[b] != e.r) continue;   /* stale entry */
            ids[a] = e.res;                                          /* merge b into a */
            ids[b] = -1;
            nxt[a] = nxt[b];
            if (nxt[b] >= 0) prv[nxt[b]] = a;
            /* the two new neighbour pairs; each merge adds at most two entries (<= 2n total) */
            for (side = 0; side < 2; side++) {
                int32_t x = side == 0 ? prv[a] : a, y = side == 0 ? a : nxt[a];
                distill__tk_hent f;
                uint64_t k;
                if (x < 0 || y < 0) continue;
                k = distill__tk_pair_key(t, s, ids[x], ids[y], &f.res);
                if (k == DISTILL__NO_PAIR) continue;
                f.ord = (k << 32) | (uint32_t)x; f.l = ids[x]; f.r = ids[y];
                if (hn == s->hcap) {
                    if (distill__tk_grow((void **)&s->heap, s->hcap, s->hcap * 2, sizeof(distill__tk_hent)))
                        return -1;
                    s->hcap *= 2;
                }
                distill__tk_heap_push(s->heap, &hn, f);
            }
        }
        for (p = 0; p >= 0; p = nxt[p])
            if (distill_ids_push(out, ids[p])) return -1;
        return 0;
    }
}

static int distill__tk_trylock(distill__tk_tcache *c, uint32_t h) {
#ifdef DISTILL__TOK_LOCKS
    return pthread_mutex_trylock(&c->locks[h % DISTILL__CACHE_LOCKS]) == 0;
#else
    (void)c; (void)h;
    return 1;
#endif
}
static void distill__tk_unlock(distill__tk_tcache *c, uint32_t h) {
#ifdef DISTILL__TOK_LOCKS
    pthread_mutex_unlock(&c->locks[h % DISTILL__CACHE_LOCKS]);
#else
    (void)c; (void)h;
#endif
}

/* One pre-tokenized chunk: through the cache, else bytes -> byte tokens -> merges. */
static int distill__tk_encode_chunk(const distill_tokenizer *t, distill__tk_scratch *s,
                                 const unsigned char *p, size_t n, distill_ids *out,
                                 distill_error *err) {
    size_t i, before = out->n;
    uint32_t h = 0;
    distill__tk_cslot *slot = NULL;
    if (n == 1 && t->byte_id[p[0]] >= 0) return distill_ids_push(out, t->byte_id[p[0]]);
    if (t->whole_first) {
        int32_t id = distill__tk_bytes_id(t, p, n);
        if (id >= 0) return distill_ids_push(out, id);
    }
    if (n <= DISTILL__CACHE_KEY && t->cache) {
        h = (uint32_t)distill__tk_hash_bytes(p, n);
        slot = &t->cache->slots[h & (DISTILL__CACHE_SLOTS - 1)];
        if (!distill__tk_trylock(t->cache, h)) slot = NULL;   /* busy: a miss, never a wait */
        else if (slot->klen == n && slot->hash == h && !memcmp(slot->key, p, n)) {
            int32_t tmp[DISTILL__CACHE_IDS];
            size_t k = slot->nids;
            memcpy(tmp, slot->ids, k * sizeof(int32_t));
            distill__tk_unlock(t->cache, h);
            for (i = 0; i < k; i++)
                if (distill_ids_push(out, tmp[i])) return distill__err(err, "tokenizer: out of memory");
            return 0;
        } else distill__tk_unlock(t->cache, h);
    }
    if (distill__tk_scratch_need(s, n)) return distill__err(err, "tokenizer: out of memory");
    for (i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0)
            return distill__err(err, "tokenizer: byte 0x%02X has no token in this vocabulary", p[i]);
        s->ids[i] = id;
    }
    if (distill__tk_bpe_merge(t, s, n, out)) return distill__err(err, "tokenizer: out of memory");
    if (slot && out->n - before <= DISTILL__CACHE_IDS && distill__tk_trylock(t->cache, h)) {
        slot->hash = h;
        slot->klen = (unsigned char)n;
        slot->nids = (unsigned char)(out->n - before);
        memcpy(slot->key, p, n);
        memcpy(slot->ids, out->ids + before, (out->n - before) * sizeof(int32_t));
        distill__tk_unlock(t->cache, h);
    }
    return 0;
}

/* llama2.c's encode (run.c), minus BOS/EOS: a " " dummy prefix when the text is not empty,
   then one token per UTF-8 character (a lead byte and up to 3 continuation bytes, as run.c
   groups them) or its bytes as <0xXX> tokens, then score-based merges over the whole text. */
static int distill__tk_encode_llama(const distill_tokenizer *t, distill__tk_scratch *s,
                                 const unsigned char *p, size_t n, int first, distill_ids *out,
                                 distill_error *err) {
    size_t i = 0, m = 0;
    if (distill__tk_scratch_need(s, n + 2)) return distill__err(err, "tokenizer: out of memory");
    if (n == 0) return 0;
    if (first) {
        if (t->space_id < 0) return distill__err(err, "tokenizer: vocabulary has no \" \" piece");
        s->ids[m++] = t->space_id;
    }
    while (i < n) {
        size_t k = 1;
        int32_t id;
        while (i + k < n && (p[i + k] & 0xC0) == 0x80 && k < 4) k++;
        id = distill__tk_bytes_id(t, p + i, k);
        if (id >= 0) s->ids[m++] = id;
        else {
            size_t j;
            for (j = 0; j < k; j++) {
                id = t->byte_id[p[i + j]];
                if (id < 0) id = 0;   /* no byte fallback piece: <unk> */
                s->ids[m++] = id;
            }
        }
        i += k;
    }
    if (distill__tk_bpe_merge(t, s, m, out)) return distill__err(err, "tokenizer: out of memory");
    return 0;
}

/* Where the next allowed special token starts in p[from..n): sets *start and returns its id,
   or returns -1. The longest special token wins where several match. */
static int32_t distill__tk_find_special(const distill_tokenizer *t, const unsigned char *p, size_t n,
                                     size_t from, size_t *start) {
    size_t i;
    int32_t a;
    for (i = from; i < n; i++) {
        if (!t->special_first[p[i]]) continue;
        for (a = 0; a < t->n_special; a++) {
            int32_t id = t->special_ids[a];
            size_t len = t->tok_len[id];
            if (len && len <= n - i && !memcmp(p + i, t->pool + t->tok_off[id], len)) {
                *start = i;
                return id;
            }
        }
    }
    return -1;
}

static int distill__tk_encode_text(const distill_tokenizer *t, distill__tk_scratch *s,
                                const unsigned char *p, size_t n, int first, distill_ids *out,
                                distill_error *err) {
    size_t i = 0;
    if (t->kind == DISTILL__KIND_LLAMA) return distill__tk_encode_llama(t, s, p, n, first, out, err);
    while (i < n) {
        size_t e = distill__tk_pretok(t->pattern, p, n, i);
        if (distill__tk_encode_chunk(t, s, p + i, e - i, out, err)) return -1;
        i = e;
    }
    return 0;
}

/* Tokenizers with an NFC normalizer (Qwen2's tokenizer.json) expect normalized text. Instead of
   carrying composition tables, check that the text is already NFC: a text with no code point
   whose NFC_Quick_Check is No or Maybe is NFC. Such code points start at U+0300 (lead byte 0xCC),
   so ASCII and most text pass with one byte compare each. Returns the byte offset of the first
   suspicious code point, or (size_t)-1. */
static size_t distill__tk_not_nfc(const unsigned char *p, size_t n, uint32_t *cp_out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k, lo = 0, hi = sizeof distill__tk_uni_nfcqc / sizeof distill__tk_uni_nfcqc[0];
        if (p[i] < 0xCC) { i++; continue; }
        k = distill__tk_utf8(p + i, n - i, &cp);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp < distill__tk_uni_nfcqc[mid][0]) hi = mid;
            else if (cp > distill__tk_uni_nfcqc[mid][1]) lo = mid + 1;
            else { *cp_out = cp; return i; }
        }
        i += k;
    }
    return (size_t)-1;
}

DISTILL_API int distill_tokenizer_encode_ex(const distill_tokenizer *t, const char *text,
                                            size_t len, int flags, distill_ids *out,
                                            distill_error *err) {
    const unsigned char *p = (const unsigned char *)text;
    distill__tk_scratch s;
    size_t pos = 0;
    int rc = 0;
    memset(&s, 0, sizeof s);
    if (!text && len) return distill__err(err, "tokenizer: encode: NULL text");
    if (len >= 0xFFFFFFFFu) return distill__err(err, "tokenizer: encode: text longer than 4 GB");
    if (t->nfc && len) {
        uint32_t cp = 0;
        size_t at = distill__tk_not_nfc(p, len, &cp);
        if (at != (size_t)-1)
            return distill__err(err, "tokenizer: encode: U+%04X at byte %zu may need NFC normalization, "
                                "which this tokenizer requires and distill.h does not implement: "
                                "normalize the text to NFC first", (unsigned)cp, at);
    }
    if ((flags & DISTILL_ENC_BOS) && t->bos_id >= 0 && distill_ids_push(out, t->bos_id))
        return distill__err(err, "tokenizer: out of memory");
    if ((flags & DISTILL_ENC_ALLOW_SPECIAL) && t->n_special) {
        while (pos < len && rc == 0) {
            size_t st = len;
            int32_t sid = distill__tk_find_special(t, p, len, pos, &st);
            rc = distill__tk_encode_text(t, &s, p + pos, st - pos, pos == 0, out, err);
            if (sid < 0 || rc) break;
            if (distill_ids_push(out, sid)) rc = distill__err(err, "tokenizer: out of memory");
            pos = st + t->tok_len[sid];
        }
    } else {
        rc = distill__tk_encode_text(t, &s, p, len, 1, out, err);
    }
    distill__tk_scratch_free(&s);
    if (rc == 0 && (flags & DISTILL_ENC_EOS) && t->eos_id >= 0 && distill_ids_push(out, t->eos_id))
        rc = distill__err(err, "tokenizer: out of memory");
    return rc;
}

DISTILL_API int distill_tokenizer_encode(const distill_tokenizer *t, const char *text, size_t len,
                                         int allow_special, distill_ids *out, distill_error *err) {
    return distill_tokenizer_encode_ex(t, text, len, allow_special ? DISTILL_ENC_ALLOW_SPECIAL : 0,
                                       out, err);
}

typedef struct distill__tk_batch_ctx {
    const distill_tokenizer *tok;
    const char *const *texts;
    const size_t *lens;
    int flags;
    distill_ids *outs;
    int64_t *failed;                   /* per thread: 1 + index of a text that failed, or 0 */
} distill__tk_batch_ctx;

static void distill__tk_batch_task(void *ctx, int64_t b, int64_t e, int thread) {
    distill__tk_batch_ctx *c = (distill__tk_batch_ctx *)ctx;
    distill_error err;
    int64_t i;
    for (i = b; i < e; i++) {
        const char *s = c->texts[i];
        size_t n = c->lens ? c->lens[i] : strlen(s);
        if (distill_tokenizer_encode_ex(c->tok, s, n, c->flags, &c->outs[i], &err) && !c->failed[thread])
            c->failed[thread] = i + 1;
    }
}

DISTILL_API int distill_tokenizer_encode_batch(const distill_tokenizer *t,
                                               const char *const *texts, const size_t *lens,
                                               size_t n, int allow_special, distill_ids *outs,
                                               distill_error *err) {
    distill__tk_batch_ctx c;
    int nt = distill_get_threads(), k;
    if (nt < 1) nt = 1;
    c.tok = t; c.texts = texts; c.lens = lens; c.outs = outs;
    c.flags = allow_special ? DISTILL_ENC_ALLOW_SPECIAL : 0;
    c.failed = (int64_t *)DISTILL_MALLOC((size_t)nt * sizeof(int64_t));
    if (!c.failed) return distill__err(err, "tokenizer: out of memory");
    for (k = 0; k < nt; k++) c.failed[k] = 0;
    distill_parallel_for((int64_t)n, 1, distill__tk_batch_task, &c);
    for (k = 0; k < nt; k++)
        if (c.failed[k]) {
            /* encode once more on this thread, for the message */
            int64_t i = c.failed[k] - 1;
            distill_ids tmp = {NULL, 0, 0};
            distill_tokenizer_encode_ex(t, texts[i], lens ? lens[i] : strlen(texts[i]), c.flags, &tmp, err);
            distill_ids_free(&tmp);
            DISTILL_FREE(c.failed);
            return -1;
        }
    DISTILL_FREE(c.failed);
    return 0;
}

/* ---- Decoding --------------------------------------------------------------------------- */
/* The bytes one id contributes after `prev` (-1 at the start). llama2.c's run.c prints nothing
   for BOS/EOS and drops the leading space of the piece that follows BOS (the dummy prefix). */
static const char *distill__tk_piece(const distill_tokenizer *t, int32_t prev, int32_t id, size_t *len) {
    const char *p;
    if (t->kind == DISTILL__KIND_LLAMA && (id == t->bos_id || id == t->eos_id)) { *len = 0; return ""; }
    p = distill_tokenizer_token_bytes(t, id, len);
    if (!p) { *len = 0; return ""; }                  /* invalid ids decode to nothing */
    if (t->kind == DISTILL__KIND_LLAMA && prev == t->bos_id && prev >= 0 && *len && p[0] == ' ') {
        p++;
        (*len)--;
    }
    return p;
}

DISTILL_API char *distill_tokenizer_decode(const distill_tokenizer *t, const int32_t *ids, size_t n,
                                           size_t *len) {
    size_t total = 0, i, k;
    char *out;
    for (i = 0; i < n; i++) {
        distill__tk_piece(t, i ? ids[i - 1] : -1, ids[i], &k);
        if (!distill__add_size(total, k, &total)) return NULL;
    }
    out = (char *)DISTILL_MALLOC(total + 1);
    if (!out) return NULL;
    total = 0;
    for (i = 0; i < n; i++) {
        const char *p = distill__tk_piece(t, i ? ids[i - 1] : -1, ids[i], &k);
        memcpy(out + total, p, k);
        total += k;
    }
    out[total] = 0;
    if (len) *len = total;
    return out;
}

DISTILL_API void distill_decoder_init(distill_decoder *d, const distill_tokenizer *tok) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->prev = -1;
}

DISTILL_API void distill_decoder_free(distill_decoder *d) {
    DISTILL_FREE(d->buf);
    d->buf = NULL;
    d->cap = 0;
}

/* Append bytes to the pending ones and emit every complete character; a trailing proper prefix
   of a valid character stays pending, bytes that cannot start one become U+FFFD. */
static const char *distill__tk_decoder_emit(distill_decoder *d, const unsigned char *p, size_t n,
                                         int flush, size_t *len) {
    size_t need = (size_t)d->npend + n, i = 0, o = 0, total;
    unsigned char *in;
    /* worst case every byte becomes the 3-byte U+FFFD */
    if (!distill__mul_size(need, 3, &total) || !distill__add_size(total, 1, &total)) { *len = 0; return ""; }
    if (total + need > d->cap) {
        size_t cap = (total + need) * 2;
        char *b = (char *)DISTILL_REALLOC(d->buf, cap);
        if (!b) { *len = 0; return ""; }
        d->buf = b;
        d->cap = cap;
    }
    in = (unsigned char *)d->buf + total;          /* the input, behind the output area */
    memcpy(in, d->pend, (size_t)d->npend);
    if (n) memcpy(in + d->npend, p, n);
    d->npend = 0;
    while (i < need) {
        uint32_t cp;
        size_t k = distill__tk_utf8(in + i, need - i, &cp);
        if (cp != 0xFFFFFFFFu) {
            memcpy(d->buf + o, in + i, k);
            o += k;
            i += k;
            continue;
        }
        if (!flush && distill__tk_utf8_need(in + i, need - i)) {   /* half a character: wait */
            d->npend = (int)(need - i);
            memcpy(d->pend, in + i, need - i);
            break;
        }
        memcpy(d->buf + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += 1;
    }
    d->buf[o] = 0;
    *len = o;
    return d->buf;
}

DISTILL_API const char *distill_decoder_push(distill_decoder *d, int32_t id, size_t *len) {
    size_t k;
    const char *p = distill__tk_piece(d->tok, d->prev, id, &k);
    d->prev = id;
    return distill__tk_decoder_emit(d, (const unsigned char *)p, k, 0, len);
}

DISTILL_API const char *distill_decoder_flush(distill_decoder *d, size_t *len) {
    return distill__tk_decoder_emit(d, NULL, 0, 1, len);
}

/* ---- Training ------------------------------------------------------------------------- */
/* 1. Count chunks: cut every text into pre-tokenizer chunks and count each distinct chunk
      (a hash table of byte strings; one table per thread, summed at the end).
   2. Words: the distinct chunks, sorted by bytes, each a sequence of token ids with a count.
   3. Pairs: for every adjacent pair, its total count (sum of word counts) and the list of words
      it occurs in. A max-heap orders pairs by (count, then smallest pair).
   4. Repeat: pop the best pair, give it a new id, rewrite only the words on its list, and apply
      the difference to the pair counts: pairs of the old word lose the word's count, pairs of
      the new word gain it. Only pairs containing the new id can grow, so only those are pushed
      on the heap; entries whose count went stale are re-pushed with the true count when popped.
   Nothing is recounted from scratch, and every choice depends only on counts and ids. */

typedef struct distill__tk_wentry {
    uint64_t h;
    size_t off;
    uint32_t len;                      /* 0 = empty slot (chunks are never empty) */
    int64_t count;
} distill__tk_wentry;
typedef struct distill__tk_wtable {
    distill__tk_wentry *e;
    size_t cap, n;
    char *arena;
    size_t an, acap;
} distill__tk_wtable;

static void distill__tk_wtable_free(distill__tk_wtable *w) {
    DISTILL_FREE(w->e);
    DISTILL_FREE(w->arena);
    memset(w, 0, sizeof *w);
}

static int distill__tk_wtable_add(distill__tk_wtable *w, const unsigned char *p, size_t n, int64_t count) {
    uint64_t h;
    size_t i;
    if (n == 0) return 0;
    if (n > 0xFFFFFFFFu) return -1;
    if ((w->n + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096, k;
        distill__tk_wentry *e = (distill__tk_wentry *)DISTILL_MALLOC(cap * sizeof *e);
        if (!e) return -1;
        memset(e, 0, cap * sizeof *e);
        for (k = 0; k < w->cap; k++) {
            if (!w->e[k].len) continue;
            for (i = (size_t)w->e[k].h & (cap - 1); e[i].len; i = (i + 1) & (cap - 1)) {}
            e[i] = w->e[k];
        }
        DISTILL_FREE(w->e);
        w->e = e;
        w->cap = cap;
    }
    h = distill__tk_hash_bytes(p, n);
    for (i = (size_t)h & (w->cap - 1); w->e[i].len; i = (i + 1) & (w->cap - 1)) {
        if (w->e[i].h == h && w->e[i].len == n && !memcmp(w->arena + w->e[i].off, p, n)) {
            w->e[i].count += count;
            return 0;
        }
    }
    if (w->an + n > w->acap) {
        size_t cap = w->acap ? w->acap : 65536;
        while (cap < w->an + n) cap *= 2;
        if (distill__tk_grow((void **)&w->arena, w->acap, cap, 1)) return -1;
        w->acap = cap;
    }
    memcpy(w->arena + w->an, p, n);
    w->e[i].h = h;
    w->e[i].off = w->an;
    w->e[i].len = (uint32_t)n;
    w->e[i].count = count;
    w->an += n;
    w->n++;
    return 0;
}

struct distill_bpe_trainer {
    int pattern;
    distill_tokenizer *specials;       /* only its special-token machinery is used */
    distill__tk_wtable *tables;
    int n_tables;
};

DISTILL_API void distill_bpe_trainer_free(distill_bpe_trainer *tr) {
    int i;
    if (!tr) return;
    for (i = 0; i < tr->n_tables; i++) distill__tk_wtable_free(&tr->tables[i]);
    DISTILL_FREE(tr->tables);
    distill_tokenizer_free(tr->specials);
    DISTILL_FREE(tr);
}

static distill_bpe_trainer *distill__tk_trainer_new(int pattern, const char *const *specials,
                                                 int n_specials, int n_tables, distill_error *err) {
    distill_bpe_trainer *tr;
    int i;
    if (!distill_pattern_name(pattern)) {
        distill__err(err, "tokenizer train: unknown pattern %d", pattern);
        return NULL;
    }
    if (n_specials < 0 || (n_specials > 0 && !specials)) {
        distill__err(err, "tokenizer train: bad special token list");
        return NULL;
    }
    tr = (distill_bpe_trainer *)DISTILL_MALLOC(sizeof *tr);
    if (!tr) { distill__err(err, "tokenizer train: out of memory"); return NULL; }
    memset(tr, 0, sizeof *tr);
    tr->pattern = pattern;
    tr->specials = distill__tk_new(DISTILL__KIND_BPE, pattern);
    tr->tables = (distill__tk_wtable *)DISTILL_MALLOC((size_t)n_tables * sizeof(distill__tk_wtable));
    if (!tr->specials || !tr->tables) goto oom;
    memset(tr->tables, 0, (size_t)n_tables * sizeof(distill__tk_wtable));
    tr->n_tables = n_tables;
    for (i = 0; i < n_specials; i++) {
        size_t n = specials[i] ? strlen(specials[i]) : 0;
        if (n == 0) {
            distill__err(err, "tokenizer train: special token %d is empty", i);
            distill_bpe_trainer_free(tr);
            return NULL;
        }
        if (distill__tk_special_id(tr->specials, specials[i], n) >= 0) {
            distill__err(err, "tokenizer train: special token '%s' given twice", specials[i]);
            distill_bpe_trainer_free(tr);
            return NULL;
        }
        if (distill__tk_add_special_raw(tr->specials, i, specials[i], n)) goto oom;
    }
    if (distill__tk_finalize(tr->specials)) goto oom;
    return tr;
oom:
    distill__err(err, "tokenizer train: out of memory");
    distill_bpe_trainer_free(tr);
    return NULL;
}

DISTILL_API distill_bpe_trainer *distill_bpe_trainer_new(int pattern, const char *const *specials,
                                                         int n_specials, distill_error *err) {
    int nt = distill_get_threads();
    return distill__tk_trainer_new(pattern, specials, n_specials, nt < 1 ? 1 : nt, err);
}

/* Count the chunks of one text into table w, skipping special tokens written in it. */
static int distill__tk_trainer_count(const distill_bpe_trainer *tr, distill__tk_wtable *w,
                                  const unsigned char *p, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        size_t st = n, i;
        int32_t sid = tr->specials->n_special ? distill__tk_find_special(tr->specials, p, n, pos, &st) : -1;
        for (i = pos; i < st;) {
            size_t e = distill__tk_pretok(tr->pattern, p, st, i);
            if (distill__tk_wtable_add(w, p + i, e - i, 1)) return -1;
            i = e;
        }
        if (sid < 0) break;
        pos = st + tr->specials->tok_len[sid];
    }
    return 0;
}

DISTILL_API int distill_bpe_trainer_add(distill_bpe_trainer *tr, const char *text, size_t len,
                                        distill_error *err) {
    if (distill__tk_trainer_count(tr, &tr->tables[0], (const unsigned char *)text, len))
        return distill__err(err, "tokenizer train: out of memory");
    return 0;
}

/* Training state over the distinct words. */
typedef struct distill__tk_pq { int64_t count; int32_t pair; } distill__tk_pq;
typedef struct distill__tk_plist { int32_t *w; int32_t n, cap; } distill__tk_plist;
typedef struct distill__tk_bpetrain {
    int32_t *tok;                      /* all words' tokens, word w at tok[woff[w]], wlen[w] long */
    size_t *woff;
    int32_t *wlen;
    int64_t *wcount;
    size_t n_words;
    int32_t *pa, *pb;                  /* pair index -> (a, b)                                */
    int64_t *pcount;
    distill__tk_plist *plist;
    size_t n_pairs, pcap;
    int32_t *pslot;                    /* hash (a, b) -> pair index, -1 empty                 */
    size_t scap;
    distill__tk_pq *heap;
    size_t hn, hcap;
    int32_t *newp;                     /* pairs created during the current merge              */
    int32_t n_newp, newp_cap;
} distill__tk_bpetrain;

static void distill__tk_bt_free(distill__tk_bpetrain *b) {
    size_t i;
    for (i = 0; i < b->n_pairs; i++) DISTILL_FREE(b->plist[i].w);
    DISTILL_FREE(b->tok); DISTILL_FREE(b->woff); DISTILL_FREE(b->wlen); DISTILL_FREE(b->wcount);
    DISTILL_FREE(b->pa); DISTILL_FREE(b->pb); DISTILL_FREE(b->pcount); DISTILL_FREE(b->plist);
    DISTILL_FREE(b->pslot); DISTILL_FREE(b->heap); DISTILL_FREE(b->newp);
}

/* The pair index of (a, b), created with count 0 if new; -1 out of memory. */
static int32_t distill__tk_bt_pair(distill__tk_bpetrain *b, int32_t x, int32_t y) {
    uint64_t key = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
    size_t mask, h;
    if ((b->n_pairs + 1) * 2 > b->scap) {
        size_t cap = b->scap ? b->scap * 2 : 65536, i;
        int32_t *s = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
        if (!s) return -1;
        for (i = 0; i < cap; i++) s[i] = -1;
        for (i = 0; i < b->n_pairs; i++) {
            uint64_t k = ((uint64_t)(uint32_t)b->pa[i] << 32) | (uint32_t)b->pb[i];
            for (h = distill__tk_hash_pair(k, cap - 1); s[h] >= 0; h = (h + 1) & (cap - 1)) {}
            s[h] = (int32_t)i;
        }
        DISTILL_FREE(b->pslot);
        b->pslot = s;
        b->scap = cap;
    }
    mask = b->scap - 1;
    for (h = distill__tk_hash_pair(key, mask); b->pslot[h] >= 0; h = (h + 1) & mask) {
        int32_t i = b->pslot[h];
        if (b->pa[i] == x && b->pb[i] == y) return i;
    }
    if (b->n_pairs == b->pcap) {
        size_t cap = b->pcap ? b->pcap * 2 : 65536;
        if (distill__tk_grow((void **)&b->pa, b->pcap, cap, 4) || distill__tk_grow((void **)&b->pb, b->pcap, cap, 4) ||
            distill__tk_grow((void **)&b->pcount, b->pcap, cap, 8) ||
            distill__tk_grow((void **)&b->plist, b->pcap, cap, sizeof(distill__tk_plist)))
            return -1;
        b->pcap = cap;
    }
    b->pa[b->n_pairs] = x;
    b->pb[b->n_pairs] = y;
    b->pcount[b->n_pairs] = 0;
    b->pslot[h] = (int32_t)b->n_pairs;
    return (int32_t)b->n_pairs++;
}

static int distill__tk_plist_add(distill__tk_plist *l, int32_t w) {
    if (l->n && l->w[l->n - 1] == w) return 0;       /* already listed for this word */
    if (l->n == l->cap) {
        int32_t cap = l->cap ? l->cap * 2 : 4;
        if (distill__tk_grow((void **)&l->w, (size_t)l->cap, (size_t)cap, 4)) return -1;
        l->cap = cap;
    }
    l->w[l->n++] = w;
    return 0;
}

/* Heap order: larger count first, then the smaller pair (a, then b). */
static int distill__tk_pq_before(const distill__tk_bpetrain *b, int64_t c1, int32_t p1, int64_t c2, int32_t p2) {
    if (c1 != c2) return c1 > c2;
    if (b->pa[p1] != b->pa[p2]) return b->pa[p1] < b->pa[p2];
    return b->pb[p1] < b->pb[p2];
}

static int distill__tk_pq_push(distill__tk_bpetrain *b, int32_t pair) {
    size_t i;
    int64_t c = b->pcount[pair];
    if (b->hn == b->hcap) {
        size_t cap = b->hcap ? b->hcap * 2 : 65536;
        if (distill__tk_grow((void **)&b->heap, b->hcap, cap, sizeof *b->heap)) return -1;
        b->hcap = cap;
    }
    i = b->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!distill__tk_pq_before(b, c, pair, b->heap[p].count, b->heap[p].pair)) break;
        b->heap[i] = b->heap[p];
        i = p;
    }
    b->heap[i].count = c;
    b->heap[i].pair = pair;
    return 0;
}

static void distill__tk_pq_pop(distill__tk_bpetrain *b) {
    distill__tk_pq last = b->heap[--b->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= b->hn) break;
        if (c + 1 < b->hn && distill__tk_pq_before(b, b->heap[c + 1].count, b->heap[c + 1].pair,
                                                b->heap[c].count, b->heap[c].pair))
            c++;
        if (!distill__tk_pq_before(b, b->heap[c].count, b->heap[c].pair, last.count, last.pair)) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (b->hn) b->heap[i] = last;
}

/* Add `delta` times word w's count to each of its adjacent pairs; register w with pairs that
   contain `fresh` (the id just created), pushing those pairs when they are first seen. */
static int distill__tk_bt_word_pairs(distill__tk_bpetrain *b, size_t w, int64_t delta, int32_t fresh) {
    const int32_t *t = b->tok + b->woff[w];
    int32_t i;
    for (i = 0; i + 1 < b->wlen[w]; i++) {
        int32_t p = distill__tk_bt_pair(b, t[i], t[i + 1]);
        if (p < 0) return -1;
        if (fresh >= 0 && b->pcount[p] == 0 && (t[i] == fresh || t[i + 1] == fresh)) {
            if (b->n_newp == b->newp_cap) {
                int32_t cap = b->newp_cap ? b->newp_cap * 2 : 1024;
                if (distill__tk_grow((void **)&b->newp, (size_t)b->newp_cap, (size_t)cap, 4)) return -1;
                b->newp_cap = cap;
            }
            b->newp[b->n_newp++] = p;
        }
        b->pcount[p] += delta * b->wcount[w];
        if (delta > 0 && (fresh < 0 || t[i] == fresh || t[i + 1] == fresh))
            if (distill__tk_plist_add(&b->plist[p], (int32_t)w)) return -1;
    }
    return 0;
}

typedef struct distill__tk_wref { const unsigned char *p; uint32_t len; int64_t count; } distill__tk_wref;
static int distill__tk_wref_cmp(const void *x, const void *y) {
    const distill__tk_wref *a = (const distill__tk_wref *)x, *b = (const distill__tk_wref *)y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

DISTILL_API distill_tokenizer *distill_bpe_trainer_finish(distill_bpe_trainer *tr, int vocab_size,
                                                          distill_error *err) {
    distill__tk_wtable *w0 = &tr->tables[0];
    distill__tk_wref *refs = NULL;
    distill__tk_bpetrain b;
    distill_tokenizer *tok = NULL;
    int32_t n_special = tr->specials->n_special, n_merges, r, k;
    size_t i, j, total = 0;
    memset(&b, 0, sizeof b);
    if (vocab_size < 256 + n_special || vocab_size > (1 << 24)) {
        distill__err(err, "tokenizer train: vocab_size %d out of range (256 bytes + %d special "
                     "tokens .. 16777216)", vocab_size, (int)n_special);
        return NULL;
    }
    n_merges = vocab_size - 256 - n_special;
    /* sum the per-thread tables into the first (in table order: sums do not depend on it) */
    for (k = 1; k < tr->n_tables; k++) {
        distill__tk_wtable *wk = &tr->tables[k];
        for (i = 0; i < wk->cap; i++)
            if (wk->e[i].len && distill__tk_wtable_add(w0, (const unsigned char *)wk->arena + wk->e[i].off,
                                                    wk->e[i].len, wk->e[i].count))
                goto oom;
        distill__tk_wtable_free(wk);
    }
    /* words in byte order, so that everything downstream is independent of hashing */
    refs = (distill__tk_wref *)DISTILL_MALLOC((w0->n ? w0->n : 1) * sizeof *refs);
    if (!refs) goto oom;
    for (i = 0, j = 0; i < w0->cap; i++)
        if (w0->e[i].len) {
            refs[j].p = (const unsigned char *)w0->arena + w0->e[i].off;
            refs[j].len = w0->e[i].len;
            refs[j].count = w0->e[i].count;
            total += w0->e[i].len;
            j++;
        }
    b.n_words = j;
    qsort(refs, b.n_words, sizeof *refs, distill__tk_wref_cmp);
    b.tok = (int32_t *)DISTILL_MALLOC((total ? total : 1) * sizeof(int32_t));
    b.woff = (size_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(size_t));
    b.wlen = (int32_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(int32_t));
    b.wcount = (int64_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(int64_t));
    if (!b.tok || !b.woff || !b.wlen || !b.wcount) goto oom;
    for (i = 0, total = 0; i < b.n_words; i++) {
        b.woff[i] = total;
        b.wlen[i] = (int32_t)refs[i].len;
        b.wcount[i] = refs[i].count;
        for (j = 0; j < refs[i].len; j++) b.tok[total + j] = refs[i].p[j];
        total += refs[i].len;
    }
    DISTILL_FREE(refs);
    refs = NULL;
    for (i = 0; i < b.n_words; i++)
        if (distill__tk_bt_word_pairs(&b, i, 1, -1)) goto oom;
    for (i = 0; i < b.n_pairs; i++)
        if (distill__tk_pq_push(&b, (int32_t)i)) goto oom;

    tok = distill__tk_new(DISTILL__KIND_BPE, tr->pattern);
    if (!tok) goto oom;
    for (k = 0; k < 256; k++) {
        unsigned char c = (unsigned char)k;
        if (distill__tk_set(tok, k, &c, 1, DISTILL__TK_BYTE)) goto oom;
    }
    for (r = 0; r < n_merges && b.hn;) {
        int32_t p = b.heap[0].pair, a, c, fresh = 256 + r;
        int64_t cnt = b.heap[0].count;
        distill__tk_plist list;
        distill__tk_pq_pop(&b);
        if (cnt != b.pcount[p]) {            /* stale: re-queue with the true count */
            if (b.pcount[p] > 0 && cnt > b.pcount[p] && distill__tk_pq_push(&b, p)) goto oom;
            continue;
        }
        if (cnt <= 0) break;
        a = b.pa[p];
        c = b.pb[p];
        {   /* the new token's bytes: left's then right's */
            size_t la = tok->tok_len[a], lc = tok->tok_len[c];
            char *tmp = (char *)DISTILL_MALLOC(la + lc);
            int rc;
            if (!tmp) goto oom;
            memcpy(tmp, tok->pool + tok->tok_off[a], la);
            memcpy(tmp + la, tok->pool + tok->tok_off[c], lc);
            rc = distill__tk_set(tok, fresh, tmp, la + lc, DISTILL__TK_MERGE);
            DISTILL_FREE(tmp);
            if (rc || distill__tk_add_merge(tok, a, c, fresh)) goto oom;
        }
        list = b.plist[p];                   /* the pair's own list never grows during its merge */
        b.plist[p].w = NULL;
        b.plist[p].n = b.plist[p].cap = 0;
        for (k = 0; k < list.n; k++) {
            size_t wi = (size_t)list.w[k];
            int32_t *t = b.tok + b.woff[wi], n = b.wlen[wi], x, y, found = 0;
            for (x = 0; x + 1 < n; x++)
                if (t[x] == a && t[x + 1] == c) { found = 1; break; }
            if (!found) continue;            /* stale list entry */
            if (distill__tk_bt_word_pairs(&b, wi, -1, -1)) { DISTILL_FREE(list.w); goto oom; }
            for (x = 0, y = 0; x < n;) {
                if (x + 1 < n && t[x] == a && t[x + 1] == c) { t[y++] = fresh; x += 2; }
                else t[y++] = t[x++];
            }
            b.wlen[wi] = y;
            if (distill__tk_bt_word_pairs(&b, wi, 1, fresh)) { DISTILL_FREE(list.w); goto oom; }
        }
        DISTILL_FREE(list.w);
        /* the pairs that contain the new id are the only ones that grew: queue them */
        for (k = 0; k < b.n_newp; k++)
            if (b.pcount[b.newp[k]] > 0 && distill__tk_pq_push(&b, b.newp[k])) goto oom;
        b.n_newp = 0;
        r++;
    }
    /* the special tokens take the ids after the merges, in the order given */
    for (k = 0; k < n_special; k++)
        if (distill__tk_add_special_raw(tok, 256 + r + k, tr->specials->pool + tr->specials->tok_off[k],
                                         tr->specials->tok_len[k]))
            goto oom;
    if (distill__tk_finalize(tok)) goto oom;
    goto done;
oom:
    distill__err(err, "tokenizer train: out of memory");
    DISTILL_FREE(refs);
    distill__tk_bt_free(&b);
    distill_tokenizer_free(tok);
    return NULL;
done:
    distill__tk_bt_free(&b);
    return tok;
}

typedef struct distill__tk_count_ctx {
    distill_bpe_trainer *tr;
    const char *const *texts;
    const size_t *lens;
    int *failed;                       /* one flag per thread: no shared writes */
} distill__tk_count_ctx;

static void distill__tk_count_task(void *ctx, int64_t b, int64_t e, int thread) {
    distill__tk_count_ctx *c = (distill__tk_count_ctx *)ctx;
    int64_t i;
    for (i = b; i < e; i++) {
        const char *s = c->texts[i];
        size_t n = c->lens ? c->lens[i] : strlen(s);
        if (distill__tk_trainer_count(c->tr, &c->tr->tables[thread], (const unsigned char *)s, n))
            c->failed[thread] = 1;
    }
}

DISTILL_API int distill_bpe_trainer_add_batch(distill_bpe_trainer *tr, const char *const *texts,
                                              const size_t *lens, size_t n, distill_error *err) {
    int nt = distill_get_threads(), k, failed = 0;
    distill__tk_count_ctx c;
    if (nt < 1) nt = 1;
    if (nt > tr->n_tables) {   /* the pool grew since the trainer was made: one table per worker */
        if (distill__tk_grow((void **)&tr->tables, (size_t)tr->n_tables, (size_t)nt, sizeof(distill__tk_wtable)))
            return distill__err(err, "tokenizer train: out of memory");
        tr->n_tables = nt;
    }
    c.tr = tr; c.texts = texts; c.lens = lens;
    c.failed = (int *)DISTILL_MALLOC((size_t)nt * sizeof(int));
    if (!c.failed) return distill__err(err, "tokenizer train: out of memory");
    for (k = 0; k < nt; k++) c.failed[k] = 0;
    distill_parallel_for((int64_t)n, 16, distill__tk_count_task, &c);
    for (k = 0; k < nt; k++) failed |= c.failed[k];
    DISTILL_FREE(c.failed);
    if (failed) return distill__err(err, "tokenizer train: out of memory");
    return 0;
}

DISTILL_API distill_tokenizer *distill_tokenizer_train(const char *const *texts, const size_t *lens,
                                                       size_t n_texts, int vocab_size, int pattern,
                                                       const char *const *specials, int n_specials,
                                                       distill_error *err) {
    distill_bpe_trainer *tr = distill_bpe_trainer_new(pattern, specials, n_specials, err);
    distill_tokenizer *tok = NULL;
    if (!tr) return NULL;
    if (distill_bpe_trainer_add_batch(tr, texts, lens, n_texts, err) == 0)
        tok = distill_bpe_trainer_finish(tr, vocab_size, err);
    distill_bpe_trainer_free(tr);
    return tok;
}

/* ---- Files: the library's own text format ------------------------------------------------ */
/* A diffable text file; every line is one fact, so two tokenizers can be compared with diff:

       distill-tokenizer 1
       pattern gpt2                      pre-tokenizer: none | gpt2 | cl100k | qwen2
       vocab_size 50257
       bytes identity                    or "bytes N" then N lines "<id> <hex byte>"
       merges 50000                      then N lines "<left> <right> <id>  # "<text>"" in rank order
       specials 1                        then N lines "<id> <text>" (escaped)
       plain 0                           then N lines "<id> <text>": tokens that are neither bytes,
                                         merges nor specials (decodable, never produced by encode)
       end

   Text is escaped: backslash as \\, and bytes <= 0x20, 0x7F and '"' as \xHH; bytes >= 0x80 stay
   raw when the token is valid UTF-8 (so CJK reads as CJK), else \xHH. "ignore_merges 1" after
   the pattern line marks Hugging Face's ignore_merges behaviour, "normalizer nfc" after it a
   tokenizer that requires NFC text (encode checks it). */

static int distill__tk_valid_utf8(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        i += distill__tk_utf8(p + i, n - i, &cp);
        if (cp == 0xFFFFFFFFu) return 0;
    }
    return 1;
}

static void distill__tk_write_escaped(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    int raw_high = distill__tk_valid_utf8(p, n);
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '\\') fputs("\\\\", f);
        else if (c <= 0x20 || c == 0x7F || c == '"' || (c >= 0x80 && !raw_high)) fprintf(f, "\\x%02X", c);
        else fputc((int)c, f);
    }
}

DISTILL_API int distill_tokenizer_save(const distill_tokenizer *t, const char *path,
                                       distill_error *err) {
    distill_atomic_file af;
    int32_t id, r, n_plain = 0, identity = 1, k;
    FILE *f;
    if (t->kind != DISTILL__KIND_BPE)
        return distill__err(err, "%s: llama2.c tokenizers are kept in their own .bin format, not "
                            "saved as text", path);
    if (distill_atomic_open(&af, path, err)) return -1;
    f = af.f;
    for (k = 0; k < 256; k++) if (t->byte_id[k] != k) identity = 0;
    for (id = 0; id < t->n_vocab; id++) if (t->tok_flag[id] == DISTILL__TK_PLAIN) n_plain++;
    fprintf(f, "distill-tokenizer 1\npattern %s\n", distill_pattern_name(t->pattern));
    if (t->whole_first) fprintf(f, "ignore_merges 1\n");
    if (t->nfc) fprintf(f, "normalizer nfc\n");
    fprintf(f, "vocab_size %d\n", (int)t->n_vocab);
    if (identity) fprintf(f, "bytes identity\n");
    else {
        int32_t nb = 0;
        for (k = 0; k < 256; k++) if (t->byte_id[k] >= 0) nb++;
        fprintf(f, "bytes %d\n", (int)nb);
        for (k = 0; k < 256; k++)
            if (t->byte_id[k] >= 0) fprintf(f, "%d %02X\n", (int)t->byte_id[k], (unsigned)k);
    }
    fprintf(f, "merges %d\n", (int)t->n_merges);
    for (r = 0; r < t->n_merges; r++) {
        int32_t m = t->m_id[r];
        fprintf(f, "%d %d %d  # \"", (int)t->m_left[r], (int)t->m_right[r], (int)m);
        distill__tk_write_escaped(f, t->pool + t->tok_off[m], t->tok_len[m]);
        fputs("\"\n", f);
    }
    fprintf(f, "specials %d\n", (int)t->n_special);
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_SPECIAL) {
            fprintf(f, "%d ", (int)id);
            distill__tk_write_escaped(f, t->pool + t->tok_off[id], t->tok_len[id]);
            fputc('\n', f);
        }
    fprintf(f, "plain %d\n", (int)n_plain);
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) {
            fprintf(f, "%d ", (int)id);
            distill__tk_write_escaped(f, t->pool + t->tok_off[id], t->tok_len[id]);
            fputc('\n', f);
        }
    fprintf(f, "end\n");
    if (ferror(f)) {
        distill_atomic_abort(&af);
        return distill__err(err, "%s: write error", path);
    }
    return distill_atomic_commit(&af, err);
}

/* A line cursor over a NUL-terminated buffer, for error messages with line numbers. */
typedef struct distill__tk_lines {
    const char *p, *end, *path;
    int line;
} distill__tk_lines;

/* The next line (without its newline) in [*s, *e); 0 at end of input. */
static int distill__tk_next_line(distill__tk_lines *L, const char **s, const char **e) {
    const char *q;
    if (L->p >= L->end) return 0;
    q = (const char *)memchr(L->p, '\n', (size_t)(L->end - L->p));
    *s = L->p;
    *e = q ? q : L->end;
    L->p = q ? q + 1 : L->end;
    if (*e > *s && (*e)[-1] == '\r') (*e)--;
    L->line++;
    return 1;
}

/* Parse a decimal integer in [lo, hi] at *s, advancing past it and following spaces. */
static int distill__tk_parse_int(const char **s, const char *e, long lo, long hi, long *out) {
    const char *p = *s;
    long v = 0;
    int neg = 0, digits = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    while (p < e && *p >= '0' && *p <= '9') {
        if (v > 100000000L) return -1;       /* far beyond any valid value: stop before overflow */
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (!digits) return -1;
    if (neg) v = -v;
    if (v < lo || v > hi) return -1;
    while (p < e && *p == ' ') p++;
    *s = p;
    *out = v;
    return 0;
}

/* Unescape text (\\ and \xHH) from [s, e) into buf (at least e - s bytes); returns the length or
   -1 on a bad escape. */
static long distill__tk_unescape(const char *s, const char *e, char *buf) {
    long n = 0;
    while (s < e) {
        if (*s != '\\') { buf[n++] = *s++; continue; }
        if (s + 1 < e && s[1] == '\\') { buf[n++] = '\\'; s += 2; continue; }
        if (s + 3 < e + 0 && s[1] == 'x') {
            int v = 0, i;
            for (i = 2; i < 4; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9') v |= c - '0';
                else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
                else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
                else return -1;
            }
            buf[n++] = (char)v;
            s += 4;
            continue;
        }
        return -1;
    }
    return n;
}

/* "keyword N" header line; returns N or -1 with an error. */
static long distill__tk_header(distill__tk_lines *L, const char *kw, long hi, distill_error *err) {
    const char *s, *e;
    size_t k = strlen(kw);
    long v;
    if (!distill__tk_next_line(L, &s, &e))
        return distill__err(err, "%s:%d: truncated: expected '%s N'", L->path, L->line, kw);
    if ((size_t)(e - s) <= k || memcmp(s, kw, k) || s[k] != ' ')
        return distill__err(err, "%s:%d: expected '%s N'", L->path, L->line, kw);
    s += k + 1;
    if (distill__tk_parse_int(&s, e, 0, hi, &v) || s != e)
        return distill__err(err, "%s:%d: '%s': count missing or out of range 0..%ld", L->path,
                            L->line, kw, hi);
    return v;
}

/* Give every merge result its bytes (left's then right's) and register the merges in rank
   order. A result may be needed before its own line (its parts defined further down), so each
   token is resolved depth-first with an explicit stack: linear time, cycles and undefined
   tokens are errors naming the merge's line. buf has room for the longest token. */
static int distill__tk_resolve_merges(distill_tokenizer *t, const char *path, const int32_t *m,
                                      const int *line, long n, int32_t vocab, char *buf,
                                      size_t file_size, distill_error *err) {
    size_t limit = file_size * 16 + (1u << 20);
    int32_t *of = NULL, *stack = NULL;           /* of[id] = the merge that makes id, or -1 */
    unsigned char *state = NULL;                 /* 0 new, 1 on the stack, 2 done */
    long i;
    int32_t id, sp;
    int rc = -1;
    if (n == 0) return 0;
    of = (int32_t *)DISTILL_MALLOC((size_t)vocab * sizeof(int32_t));
    stack = (int32_t *)DISTILL_MALLOC(((size_t)n + 1) * sizeof(int32_t));
    state = (unsigned char *)DISTILL_MALLOC((size_t)vocab);
    if (!of || !stack || !state) { distill__err(err, "%s: out of memory", path); goto done; }
    for (id = 0; id < vocab; id++) { of[id] = -1; state[id] = 0; }
    for (i = 0; i < n; i++) {
        id = m[3 * i + 2];
        if (of[id] >= 0 || (id < t->n_vocab && t->tok_flag[id])) {
            distill__err(err, "%s:%d: token id %d defined twice", path, line[i], (int)id);
            goto done;
        }
        of[id] = (int32_t)i;
    }
    for (i = 0; i < n; i++) {
        stack[0] = m[3 * i + 2];
        sp = 1;
        while (sp > 0) {
            int32_t top = stack[sp - 1], r = of[top], k, pending = -1;
            if (state[top] == 2) { sp--; continue; }
            state[top] = 1;
            for (k = 0; k < 2 && pending < 0; k++) {
                int32_t c = m[3 * r + k];
                if (c < t->n_vocab && t->tok_flag[c]) continue;          /* defined */
                if (of[c] < 0) {
                    distill__err(err, "%s:%d: merge uses token %d, which nothing defines", path, line[r], (int)c);
                    goto done;
                }
                if (state[c] == 1) {
                    distill__err(err, "%s:%d: merges form a cycle through token %d", path, line[r], (int)c);
                    goto done;
                }
                pending = c;
            }
            if (pending >= 0) { stack[sp++] = pending; continue; }
            {
                int32_t a = m[3 * r], b = m[3 * r + 1];
                size_t la = t->tok_len[a], lb = t->tok_len[b];
                /* doubling chains could otherwise grow exponentially from a small file */
                if (la + lb > 65536 || t->pool_n > limit) {
                    distill__err(err, "%s:%d: merged tokens too long (a token over 64 KB, or all "
                                 "together over 16x the file size)", path, line[r]);
                    goto done;
                }
                memcpy(buf, t->pool + t->tok_off[a], la);
                memcpy(buf + la, t->pool + t->tok_off[b], lb);
                if (distill__tk_set(t, top, buf, la + lb, DISTILL__TK_MERGE)) {
                    distill__err(err, "%s: out of memory", path);
                    goto done;
                }
            }
            state[top] = 2;
            sp--;
        }
    }
    for (i = 0; i < n; i++) {
        int r2 = distill__tk_add_merge(t, m[3 * i], m[3 * i + 1], m[3 * i + 2]);
        if (r2 == -2) {
            distill__err(err, "%s:%d: duplicate merge %d %d", path, line[i], (int)m[3 * i], (int)m[3 * i + 1]);
            goto done;
        }
        if (r2) { distill__err(err, "%s: out of memory", path); goto done; }
    }
    rc = 0;
done:
    DISTILL_FREE(of); DISTILL_FREE(stack); DISTILL_FREE(state);
    return rc;
}

static distill_tokenizer *distill__tk_load_own(const char *path, const char *data, size_t size,
                                               distill_error *err) {
    distill__tk_lines L;
    distill_tokenizer *t = NULL;
    const char *s = NULL, *e = NULL;   /* stay NULL (length 0, refused) when there is no first line */
    char *buf = NULL;
    long vocab, n, i, v, n_m = 0;
    int32_t *mtrip = NULL;
    int *mline = NULL;
    int pattern;
    L.p = data; L.end = data + size; L.path = path; L.line = 0;
    buf = (char *)DISTILL_MALLOC(size + 131072 + 1);   /* a line, or a merged token (<= 64 KB each) */
    if (!buf) { distill__err(err, "%s: out of memory", path); return NULL; }
    distill__tk_next_line(&L, &s, &e);
    if ((size_t)(e - s) != 19 || memcmp(s, "distill-tokenizer 1", 19)) {
        distill__err(err, "%s:1: unsupported version line (expected 'distill-tokenizer 1')", path);
        goto fail;
    }
    if (!distill__tk_next_line(&L, &s, &e) || e - s < 9 || memcmp(s, "pattern ", 8)) {
        distill__err(err, "%s:%d: expected 'pattern NAME'", path, L.line);
        goto fail;
    }
    memcpy(buf, s + 8, (size_t)(e - s - 8));
    buf[e - s - 8] = 0;
    pattern = distill_pattern_from_name(buf);
    if (pattern < 0) {
        distill__err(err, "%s:%d: unknown pattern '%s' (none, gpt2, cl100k, qwen2)", path, L.line, buf);
        goto fail;
    }
    t = distill__tk_new(DISTILL__KIND_BPE, pattern);
    if (!t) { distill__err(err, "%s: out of memory", path); goto fail; }
    if (L.p + 15 <= L.end && !memcmp(L.p, "ignore_merges 1", 15)) {
        distill__tk_next_line(&L, &s, &e);
        t->whole_first = 1;
    }
    if (L.p + 14 <= L.end && !memcmp(L.p, "normalizer nfc", 14)) {
        distill__tk_next_line(&L, &s, &e);
        t->nfc = 1;
    }
    if ((vocab = distill__tk_header(&L, "vocab_size", 1 << 24, err)) < 0) goto fail;
    {   /* every id but the 256 bytes takes a line: a bigger vocab_size cannot be honest */
        long lines = 0;
        const char *q;
        for (q = data; q < data + size; q++) lines += *q == '\n';
        if (vocab > lines + 256) {
            distill__err(err, "%s:%d: vocab_size %ld is more than the file's %ld lines can define", path,
                         L.line, vocab, lines);
            goto fail;
        }
    }
    if (!distill__tk_next_line(&L, &s, &e)) {
        distill__err(err, "%s:%d: truncated: expected 'bytes'", path, L.line);
        goto fail;
    }
    if ((size_t)(e - s) == 14 && !memcmp(s, "bytes identity", 14)) {
        if (vocab < 256) {
            distill__err(err, "%s:%d: 'bytes identity' needs vocab_size >= 256", path, L.line);
            goto fail;
        }
        for (i = 0; i < 256; i++) {
            char c = (char)i;
            if (distill__tk_set(t, (int32_t)i, &c, 1, DISTILL__TK_BYTE)) goto oom;
        }
    } else {
        L.p = s; L.line--;                  /* re-read it as "bytes N" */
        if ((n = distill__tk_header(&L, "bytes", 256, err)) < 0) goto fail;
        for (i = 0; i < n; i++) {
            long id, b;
            char c;
            if (!distill__tk_next_line(&L, &s, &e)) {
                distill__err(err, "%s:%d: truncated: expected %ld byte lines, got %ld", path, L.line, n, i);
                goto fail;
            }
            if (distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || e - s != 2 ||
                (b = strtol(s, NULL, 16), !isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))) {
                distill__err(err, "%s:%d: expected '<id> <hex byte>' with id < vocab_size %ld", path, L.line, vocab);
                goto fail;
            }
            c = (char)b;
            if (t->n_vocab > id && t->tok_flag[id] != DISTILL__TK_NONE) {
                distill__err(err, "%s:%d: token id %ld defined twice", path, L.line, id);
                goto fail;
            }
            if (t->byte_id[(unsigned char)c] >= 0) {
                distill__err(err, "%s:%d: byte %02lX listed twice", path, L.line, b);
                goto fail;
            }
            if (distill__tk_set(t, (int32_t)id, &c, 1, DISTILL__TK_BYTE)) goto oom;
        }
    }
    /* merges: read now, their tokens' bytes are resolved once every section is in (a merge may
       use a special or plain token, or, in files converted from elsewhere, a later merge) */
    if ((n = distill__tk_header(&L, "merges", 1 << 24, err)) < 0) goto fail;
    n_m = n;
    if (n_m) {
        mtrip = (int32_t *)DISTILL_MALLOC((size_t)n_m * 3 * sizeof(int32_t));
        mline = (int *)DISTILL_MALLOC((size_t)n_m * sizeof(int));
        if (!mtrip || !mline) goto oom;
    }
    for (i = 0; i < n; i++) {
        long a, b, id;
        if (!distill__tk_next_line(&L, &s, &e)) {
            distill__err(err, "%s:%d: truncated: expected %ld merges, got %ld", path, L.line, n, i);
            goto fail;
        }
        if (distill__tk_parse_int(&s, e, 0, vocab - 1, &a) || distill__tk_parse_int(&s, e, 0, vocab - 1, &b) ||
            distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || (s != e && *s != '#')) {
            distill__err(err, "%s:%d: expected '<left> <right> <id>' with ids < vocab_size %ld", path, L.line, vocab);
            goto fail;
        }
        mtrip[3 * i] = (int32_t)a; mtrip[3 * i + 1] = (int32_t)b; mtrip[3 * i + 2] = (int32_t)id;
        mline[i] = L.line;
    }
    for (v = 0; v < 2; v++) {
        const char *kw = v == 0 ? "specials" : "plain";
        if ((n = distill__tk_header(&L, kw, 1 << 24, err)) < 0) goto fail;
        for (i = 0; i < n; i++) {
            long id, len;
            if (!distill__tk_next_line(&L, &s, &e)) {
                distill__err(err, "%s:%d: truncated: expected %ld %s lines, got %ld", path, L.line, n, kw, i);
                goto fail;
            }
            if (distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || (len = distill__tk_unescape(s, e, buf)) <= 0) {
                distill__err(err, "%s:%d: expected '<id> <text>' with id < vocab_size %ld and valid escapes",
                             path, L.line, vocab);
                goto fail;
            }
            if (id < t->n_vocab && t->tok_flag[id]) {
                distill__err(err, "%s:%d: token id %ld defined twice", path, L.line, id);
                goto fail;
            }
            if (v == 0 ? distill__tk_add_special_raw(t, (int32_t)id, buf, (size_t)len)
                       : distill__tk_set(t, (int32_t)id, buf, (size_t)len, DISTILL__TK_PLAIN))
                goto oom;
        }
    }
    if (!distill__tk_next_line(&L, &s, &e) || e - s != 3 || memcmp(s, "end", 3)) {
        distill__err(err, "%s:%d: expected 'end' (file truncated or counts wrong)", path, L.line);
        goto fail;
    }
    if (distill__tk_resolve_merges(t, path, mtrip, mline, n_m, (int32_t)vocab, buf, size, err)) goto fail;
    if (t->n_vocab != vocab) {
        distill__err(err, "%s: vocab_size says %ld but the file defines ids up to %d", path, vocab,
                     (int)t->n_vocab - 1);
        goto fail;
    }
    if (distill__tk_finalize(t)) goto oom;
    DISTILL_FREE(buf); DISTILL_FREE(mtrip); DISTILL_FREE(mline);
    return t;
oom:
    distill__err(err, "%s: out of memory", path);
fail:
    DISTILL_FREE(buf); DISTILL_FREE(mtrip); DISTILL_FREE(mline);
    distill_tokenizer_free(t);
    return NULL;
}

/* ---- Files: llama2.c tokenizer.bin ------------------------------------------------------ */
/* int32 max_token_length, then per token: float32 score, int32 length, the bytes. The vocab size
   is not stored (run.c takes it from the model); here it is the number of records. Pieces are
   SentencePiece's with U+2581 already turned into ' '; <0xXX> pieces are byte fallbacks, and
   ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS). */
static distill_tokenizer *distill__tk_load_llama(const char *path, const unsigned char *d,
                                                 size_t size, distill_error *err) {
    distill_tokenizer *t;
    size_t off = 4, cap = 0;
    int32_t maxlen, n = 0;
    if (size < 4) {
        distill__err(err, "%s: not a tokenizer (%zu bytes: too short for any supported format)", path, size);
        return NULL;
    }
    memcpy(&maxlen, d, 4);
    if (maxlen <= 0 || maxlen > 65536) {
        distill__err(err, "%s: not a supported tokenizer: as llama2.c tokenizer.bin its "
                     "max_token_length would be %d", path, (int)maxlen);
        return NULL;
    }
    t = distill__tk_new(DISTILL__KIND_LLAMA, DISTILL_PATTERN_NONE);
    if (!t) { distill__err(err, "%s: out of memory", path); return NULL; }
    while (off < size) {
        float score;
        int32_t len;
        if (size - off < 8) {
            distill__err(err, "%s: byte offset %zu: truncated record header of token %d", path, off, (int)n);
            goto fail;
        }
        memcpy(&score, d + off, 4);
        memcpy(&len, d + off + 4, 4);
        off += 8;
        if (len < 0 || len > maxlen || (size_t)len > size - off) {
            distill__err(err, "%s: byte offset %zu: token %d has length %d (max_token_length %d, "
                         "%zu bytes left)", path, off - 4, (int)n, (int)len, (int)maxlen, size - off);
            goto fail;
        }
        if (score != score) {
            distill__err(err, "%s: byte offset %zu: token %d has a NaN score", path, off - 8, (int)n);
            goto fail;
        }
        if (n >= (1 << 24)) { distill__err(err, "%s: more than 16M tokens", path); goto fail; }
        if (distill__tk_set(t, n, d + off, (size_t)len, DISTILL__TK_PLAIN)) goto oom;
        if ((size_t)n >= cap) {
            size_t nc = cap ? cap * 2 : 1024;
            if (distill__tk_grow((void **)&t->scores, cap, nc, sizeof(float)) ||
                distill__tk_grow((void **)&t->byteval, cap, nc, sizeof(int16_t)))
                goto oom;
            cap = nc;
        }
        t->scores[n] = score;
        t->byteval[n] = -1;
        if (len == 6 && !memcmp(d + off, "<0x", 3) && d[off + 5] == '>' &&
            isxdigit(d[off + 3]) && isxdigit(d[off + 4])) {
            char hex[3];
            int b;
            hex[0] = (char)d[off + 3]; hex[1] = (char)d[off + 4]; hex[2] = 0;
            b = (int)strtol(hex, NULL, 16);
            t->byteval[n] = (int16_t)b;
            if (t->byte_id[b] < 0) t->byte_id[b] = n;
        }
        off += (size_t)len;
        n++;
    }
    if (n < 3) { distill__err(err, "%s: only %d tokens", path, (int)n); goto fail; }
    {   /* <unk> <s> </s> are control tokens: never produced from text unless allowed */
        int32_t i;
        for (i = 0; i < 3; i++)
            if (t->tok_len[i] >= 3 && t->pool[t->tok_off[i]] == '<' &&
                t->pool[t->tok_off[i] + t->tok_len[i] - 1] == '>') {
                t->tok_flag[i] = DISTILL__TK_SPECIAL;
                if (distill__tk_grow((void **)&t->special_ids, (size_t)t->n_special,
                                     (size_t)t->n_special + 1, 4))
                    goto oom;
                t->special_ids[t->n_special++] = i;
                t->special_cap = t->n_special;
            }
    }
    t->bos_id = 1;
    t->eos_id = 2;
    if (distill__tk_finalize(t)) goto oom;
    t->space_id = distill__tk_bytes_id(t, " ", 1);
    return t;
oom:
    distill__err(err, "%s: out of memory", path);
fail:
    distill_tokenizer_free(t);
    return NULL;
}

/* ---- Files: Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt --------------------- */
/* These store tokens as text through GPT-2's byte-to-unicode map: every byte becomes a printable
   character, the 188 printable ones ('!'..'~', '\xA1'..'\xAC', '\xAE'..'\xFF') as themselves,
   the other 68 (controls, space, DEL, NBSP, soft hyphen) as U+0100, U+0101, ... in byte order.
   So ' ' is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A). Decoding a token string maps back. */
static int distill__tk_gpt2_printable(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* Map a token string to bytes (out has room for len bytes); -1 if a character is outside the
   map. */
static long distill__tk_gpt2_decode(const char *s, size_t len, unsigned char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = distill__tk_utf8(p + i, len - i, &cp);
        if (cp < 256 && distill__tk_gpt2_printable((int)cp)) out[n++] = (unsigned char)cp;
        else if (cp >= 256 && cp < 256 + 68) {
            int b, idx = 0;        /* the (cp - 256)-th non-printable byte */
            for (b = 0; b < 256; b++)
                if (!distill__tk_gpt2_printable(b) && idx++ == (int)(cp - 256)) break;
            out[n++] = (unsigned char)b;
        } else return -1;
        i += k;
    }
    return n;
}

/* Shared by both JSON forms: vocab object -> tokens; then merges (strings "a b" or pairs
   ["a", "b"]) in rank order. `where` names the merges' source for messages. */
static int distill__tk_json_vocab(distill_tokenizer *t, const char *path, const distill_json *vocab,
                                  unsigned char *buf, distill_error *err) {
    size_t i;
    if (!vocab || vocab->type != DISTILL_JSON_OBJECT)
        return distill__err(err, "%s: vocab: expected an object of token -> id", path);
    if (vocab->len > (1u << 24))
        return distill__err(err, "%s:%d: vocab: %zu tokens is more than 16M", path, vocab->line, vocab->len);
    for (i = 0; i < vocab->len; i++) {
        const distill_json *v = &vocab->items[i];
        long n;
        if (v->type != DISTILL_JSON_NUMBER || !v->is_int || v->i64 < 0 || v->i64 >= (int64_t)vocab->len)
            return distill__err(err, "%s:%d:%d: vocab: id of token '%s' is not an integer in 0..%zu "
                                "(ids must be contiguous)", path, v->line, v->col, vocab->keys[i], vocab->len - 1);
        if (v->i64 < t->n_vocab && t->tok_flag[v->i64])
            return distill__err(err, "%s:%d:%d: vocab: id %d used twice", path, v->line, v->col,
                                (int)v->i64);
        if (vocab->key_lens[i] == 0)
            return distill__err(err, "%s:%d:%d: vocab: empty token (id %d)", path, v->line, v->col, (int)v->i64);
        n = distill__tk_gpt2_decode(vocab->keys[i], vocab->key_lens[i], buf);
        if (n < 0)       /* not byte-level text: keep its UTF-8 bytes as they are */
            n = (long)vocab->key_lens[i], memcpy(buf, vocab->keys[i], (size_t)n);
        if (distill__tk_set(t, (int32_t)v->i64, buf, (size_t)n, n == 1 ? DISTILL__TK_BYTE : DISTILL__TK_PLAIN))
            return distill__err(err, "%s: out of memory", path);
    }
    return 0;
}

static int distill__tk_merge_strings(distill_tokenizer *t, const char *path, int line,
                                     const char *a, size_t la, const char *b, size_t lb,
                                     unsigned char *buf, distill_error *err) {
    long na = distill__tk_gpt2_decode(a, la, buf), nb;
    int32_t ia, ib, ir;
    int rc;
    if (na < 0) return distill__err(err, "%s:%d: merge: '%.*s' is not byte-level text", path, line, (int)la, a);
    ia = distill__tk_bytes_id(t, buf, (size_t)na);
    nb = distill__tk_gpt2_decode(b, lb, buf + na);
    if (nb < 0) return distill__err(err, "%s:%d: merge: '%.*s' is not byte-level text", path, line, (int)lb, b);
    ib = distill__tk_bytes_id(t, buf + na, (size_t)nb);
    ir = distill__tk_bytes_id(t, buf, (size_t)(na + nb));
    if (ia < 0 || ib < 0 || ir < 0)
        return distill__err(err, "%s:%d: merge '%.*s %.*s': %s is not in the vocabulary", path, line,
                            (int)la, a, (int)lb, b, ia < 0 ? "left token" : ib < 0 ? "right token" : "the merged token");
    rc = distill__tk_add_merge(t, ia, ib, ir);
    if (rc == -2) return distill__err(err, "%s:%d: duplicate merge '%.*s %.*s'", path, line, (int)la, a, (int)lb, b);
    if (rc) return distill__err(err, "%s: out of memory", path);
    if (t->tok_flag[ir] == DISTILL__TK_PLAIN) t->tok_flag[ir] = DISTILL__TK_MERGE;
    return 0;
}

/* After the merges: tokens that are neither single bytes nor made by a merge. */
static void distill__tk_mark_unreachable(distill_tokenizer *t, int flag) {
    int32_t id;
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) t->tok_flag[id] = (unsigned char)flag;
}

static distill_tokenizer *distill__tk_load_vocab_merges(const char *path, const char *data,
                                                        size_t size, const char *merges_path,
                                                        distill_error *err) {
    distill_json *root = distill_json_parse(data, size, path, 1, err);
    distill_tokenizer *t = NULL;
    char *mtext = NULL;
    unsigned char *buf = NULL;
    size_t msize = 0, maxkey = 0, i;
    distill__tk_lines L;
    const char *s, *e;
    int32_t id;
    if (!root) return NULL;
    if (root->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: expected a JSON object (vocab.json) or a tokenizer.json", path);
        goto fail;
    }
    mtext = (char *)distill_read_file(merges_path, &msize, err);
    if (!mtext) goto fail;
    for (i = 0; i < root->len; i++) if (root->key_lens[i] > maxkey) maxkey = root->key_lens[i];
    buf = (unsigned char *)DISTILL_MALLOC(maxkey * 2 + msize + 16);
    t = distill__tk_new(DISTILL__KIND_BPE, DISTILL_PATTERN_GPT2);
    if (!buf || !t) { distill__err(err, "%s: out of memory", path); goto fail; }
    if (distill__tk_json_vocab(t, path, root, buf, err)) goto fail;
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    L.p = mtext; L.end = mtext + msize; L.path = merges_path; L.line = 0;
    while (distill__tk_next_line(&L, &s, &e)) {
        const char *sp;
        if (s == e || (L.line == 1 && e - s >= 8 && !memcmp(s, "#version", 8))) continue;
        sp = (const char *)memchr(s, ' ', (size_t)(e - s));
        if (!sp || sp == s || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
            distill__err(err, "%s:%d: expected 'left right'", merges_path, L.line);
            goto fail;
        }
        if (distill__tk_merge_strings(t, merges_path, L.line, s, (size_t)(sp - s), sp + 1,
                                      (size_t)(e - sp - 1), buf, err))
            goto fail;
    }
    /* vocab.json has no notion of special tokens: the unreachable ones (GPT-2's <|endoftext|>)
       are the special ones */
    distill__tk_mark_unreachable(t, DISTILL__TK_PLAIN);
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) {
            t->tok_flag[id] = DISTILL__TK_NONE;
            if (distill__tk_add_special_raw(t, id, t->pool + t->tok_off[id], t->tok_len[id])) {
                distill__err(err, "%s: out of memory", path);
                goto fail;
            }
        }
    for (id = 0; id < t->n_vocab; id++)
        if (!t->tok_flag[id]) {
            distill__err(err, "%s: ids are not contiguous: id %d is missing", path, (int)id);
            goto fail;
        }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    distill_json_free(root);
    DISTILL_FREE(mtext);
    DISTILL_FREE(buf);
    return t;
fail:
    distill_json_free(root);
    DISTILL_FREE(mtext);
    DISTILL_FREE(buf);
    distill_tokenizer_free(t);
    return NULL;
}

/* The Split regexes we can run, as tokenizer.json spells them. */
static int distill__tk_pattern_of_regex(const char *re) {
    static const char *const gpt2 =
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    static const char *const cl100k =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char *const qwen2 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (!strcmp(re, gpt2)) return DISTILL_PATTERN_GPT2;
    if (!strcmp(re, cl100k)) return DISTILL_PATTERN_CL100K;
    if (!strcmp(re, qwen2)) return DISTILL_PATTERN_QWEN2;
    return -1;
}

static int distill__tk_json_true(const distill_json *v) { return v && v->type == DISTILL_JSON_TRUE; }

/* pre_tokenizer -> pattern, or -1 with an error naming what is not supported. */
static int distill__tk_json_pretok(const char *path, const distill_json *pt, distill_error *err) {
    const distill_json *type;
    if (!pt || pt->type == DISTILL_JSON_NULL) return DISTILL_PATTERN_NONE;
    type = distill_json_get(pt, "type");
    if (!type || type->type != DISTILL_JSON_STRING)
        return distill__err(err, "%s:%d: pre_tokenizer: missing 'type'", path, pt->line);
    if (!strcmp(type->str, "ByteLevel")) {
        if (distill__tk_json_true(distill_json_get(pt, "add_prefix_space")))
            return distill__err(err, "%s:%d: pre_tokenizer ByteLevel with add_prefix_space=true is "
                                "not supported", path, pt->line);
        return distill__tk_json_true(distill_json_get(pt, "use_regex")) || !distill_json_get(pt, "use_regex")
                   ? DISTILL_PATTERN_GPT2 : DISTILL_PATTERN_NONE;
    }
    if (!strcmp(type->str, "Split")) {
        const distill_json *re = distill_json_path(pt, "pattern.Regex");
        const distill_json *beh = distill_json_get(pt, "behavior");
        int p;
        if (!re || re->type != DISTILL_JSON_STRING)
            return distill__err(err, "%s:%d: pre_tokenizer Split: only 'pattern': {'Regex': ...} is "
                                "supported", path, pt->line);
        p = distill__tk_pattern_of_regex(re->str);
        if (p < 0)
            return distill__err(err, "%s:%d: pre_tokenizer Split: unsupported regex '%.200s' (supported: "
                                "the GPT-2, cl100k and Qwen2 patterns)", path, re->line, re->str);
        if (!beh || beh->type != DISTILL_JSON_STRING || strcmp(beh->str, "Isolated"))
            return distill__err(err, "%s:%d: pre_tokenizer Split: only behavior 'Isolated' is supported",
                                path, pt->line);
        return p;
    }
    if (!strcmp(type->str, "Sequence")) {
        const distill_json *list = distill_json_get(pt, "pretokenizers");
        int pattern = DISTILL_PATTERN_NONE;
        size_t i;
        if (!list || list->type != DISTILL_JSON_ARRAY)
            return distill__err(err, "%s:%d: pre_tokenizer Sequence: missing 'pretokenizers'", path, pt->line);
        for (i = 0; i < list->len; i++) {
            const distill_json *item = &list->items[i];
            const distill_json *ty = distill_json_get(item, "type");
            int p;
            /* a ByteLevel without regex only maps bytes: nothing to split */
            if (ty && ty->type == DISTILL_JSON_STRING && !strcmp(ty->str, "ByteLevel") &&
                !distill__tk_json_true(distill_json_get(item, "use_regex")) &&
                !distill__tk_json_true(distill_json_get(item, "add_prefix_space")))
                continue;
            p = distill__tk_json_pretok(path, item, err);
            if (p < 0) return -1;
            if (p != DISTILL_PATTERN_NONE && pattern != DISTILL_PATTERN_NONE)
                return distill__err(err, "%s:%d: pre_tokenizer Sequence: two splitting steps are not "
                                    "supported", path, item->line);
            if (p != DISTILL_PATTERN_NONE) pattern = p;
        }
        return pattern;
    }
    return distill__err(err, "%s:%d: pre_tokenizer type '%s' is not supported (ByteLevel, Split, "
                        "Sequence)", path, pt->line, type->str);
}

static distill_tokenizer *distill__tk_load_hf(const char *path, const distill_json *root,
                                              distill_error *err) {
    const distill_json *model = distill_json_get(root, "model"), *v, *merges, *added, *vocab;
    distill_tokenizer *t = NULL;
    unsigned char *buf = NULL;
    size_t i, maxkey = 0;
    int64_t max_id;
    int pattern, nfc = 0;
    int32_t id;
    if (!model || model->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: field 'model': expected an object", path);
        return NULL;
    }
    v = distill_json_get(model, "type");
    if (v && (v->type != DISTILL_JSON_STRING || strcmp(v->str, "BPE"))) {
        distill__err(err, "%s:%d: field 'model.type': '%s' is not supported (only BPE)", path, v->line,
                     v->type == DISTILL_JSON_STRING ? v->str : "?");
        return NULL;
    }
    if (distill__tk_json_true(distill_json_get(model, "byte_fallback"))) {
        distill__err(err, "%s: field 'model.byte_fallback': true is not supported (byte-level BPE only)", path);
        return NULL;
    }
    v = distill_json_get(model, "continuing_subword_prefix");
    if (v && v->type == DISTILL_JSON_STRING && v->len) {
        distill__err(err, "%s:%d: field 'model.continuing_subword_prefix' is not supported", path, v->line);
        return NULL;
    }
    v = distill_json_get(model, "end_of_word_suffix");
    if (v && v->type == DISTILL_JSON_STRING && v->len) {
        distill__err(err, "%s:%d: field 'model.end_of_word_suffix' is not supported", path, v->line);
        return NULL;
    }
    v = distill_json_get(root, "normalizer");
    if (v && v->type != DISTILL_JSON_NULL) {
        const distill_json *ty = distill_json_get(v, "type");
        if (!ty || ty->type != DISTILL_JSON_STRING || strcmp(ty->str, "NFC")) {
            distill__err(err, "%s:%d: field 'normalizer': '%s' is not supported (null, or NFC with text "
                         "that is already NFC)", path, v->line, ty && ty->type == DISTILL_JSON_STRING ? ty->str : "?");
            return NULL;
        }
        nfc = 1;
    }
    pattern = distill__tk_json_pretok(path, distill_json_get(root, "pre_tokenizer"), err);
    if (pattern < 0) return NULL;
    vocab = distill_json_get(model, "vocab");
    merges = distill_json_get(model, "merges");
    added = distill_json_get(root, "added_tokens");
    if (!vocab || vocab->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: field 'model.vocab': expected an object", path);
        return NULL;
    }
    if (!merges || merges->type != DISTILL_JSON_ARRAY) {
        distill__err(err, "%s: field 'model.merges': expected an array", path);
        return NULL;
    }
    if (added && added->type != DISTILL_JSON_ARRAY && added->type != DISTILL_JSON_NULL) {
        distill__err(err, "%s:%d: field 'added_tokens': expected an array", path, added->line);
        return NULL;
    }
    for (i = 0; i < vocab->len; i++) if (vocab->key_lens[i] > maxkey) maxkey = vocab->key_lens[i];
    for (i = 0; i < merges->len; i++)
        if (merges->items[i].type == DISTILL_JSON_STRING && merges->items[i].len > maxkey)
            maxkey = merges->items[i].len;
        else if (merges->items[i].type == DISTILL_JSON_ARRAY && merges->items[i].len == 2) {
            size_t la = merges->items[i].items[0].len + merges->items[i].items[1].len;
            if (la > maxkey) maxkey = la;
        }
    if (added && added->type == DISTILL_JSON_ARRAY)
        for (i = 0; i < added->len; i++) {
            const distill_json *c = distill_json_get(&added->items[i], "content");
            if (c && c->type == DISTILL_JSON_STRING && c->len > maxkey) maxkey = c->len;
        }
    /* ids must be contiguous, so none can reach the number of entries */
    max_id = (int64_t)vocab->len + (added && added->type == DISTILL_JSON_ARRAY ? (int64_t)added->len : 0);
    if (max_id > (1 << 24)) max_id = 1 << 24;
    buf = (unsigned char *)DISTILL_MALLOC(maxkey * 2 + 16);
    t = distill__tk_new(DISTILL__KIND_BPE, pattern);
    if (!buf || !t) { distill__err(err, "%s: out of memory", path); goto fail; }
    v = distill_json_get(model, "ignore_merges");
    t->whole_first = distill__tk_json_true(v);
    t->nfc = nfc;
    /* added tokens first, so their ids are taken before the vocab loader sees them */
    if (added && added->type == DISTILL_JSON_ARRAY)
        for (i = 0; i < added->len; i++) {
            const distill_json *a = &added->items[i];
            const distill_json *aid = distill_json_get(a, "id"), *c = distill_json_get(a, "content");
            if (!aid || aid->type != DISTILL_JSON_NUMBER || !aid->is_int || aid->i64 < 0 || aid->i64 >= max_id ||
                !c || c->type != DISTILL_JSON_STRING || c->len == 0) {
                distill__err(err, "%s:%d: added_tokens[%zu]: expected 'id' (integer) and 'content' "
                             "(non-empty string)", path, a->line, i);
                goto fail;
            }
            if (aid->i64 < t->n_vocab && t->tok_flag[aid->i64]) {
                distill__err(err, "%s:%d: added_tokens[%zu]: id %d used twice", path, a->line, i, (int)aid->i64);
                goto fail;
            }
            if (distill__tk_add_special_raw(t, (int32_t)aid->i64, c->str, c->len)) {
                distill__err(err, "%s: out of memory", path);
                goto fail;
            }
        }
    /* the vocab repeats the added tokens: skip those entries */
    for (i = 0; i < vocab->len; i++) {
        const distill_json *x = &vocab->items[i];
        long n;
        if (x->type != DISTILL_JSON_NUMBER || !x->is_int || x->i64 < 0 || x->i64 >= max_id) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': id of '%s' is not an integer in 0..%ld "
                         "(ids must be contiguous)", path, x->line, x->col, vocab->keys[i], (long)max_id - 1);
            goto fail;
        }
        if (x->i64 < t->n_vocab && t->tok_flag[x->i64] == DISTILL__TK_SPECIAL) continue;
        if (x->i64 < t->n_vocab && t->tok_flag[x->i64]) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': id %d used twice", path, x->line, x->col,
                         (int)x->i64);
            goto fail;
        }
        n = distill__tk_gpt2_decode(vocab->keys[i], vocab->key_lens[i], buf);
        if (n == 0) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': empty token (id %d)", path, x->line, x->col, (int)x->i64);
            goto fail;
        }
        if (n < 0) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': token '%s' is not byte-level text", path,
                         x->line, x->col, vocab->keys[i]);
            goto fail;
        }
        if (distill__tk_set(t, (int32_t)x->i64, buf, (size_t)n, n == 1 ? DISTILL__TK_BYTE : DISTILL__TK_PLAIN)) {
            distill__err(err, "%s: out of memory", path);
            goto fail;
        }
    }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    for (i = 0; i < merges->len; i++) {
        const distill_json *m = &merges->items[i];
        if (m->type == DISTILL_JSON_STRING) {
            const char *sp = (const char *)memchr(m->str, ' ', m->len);
            if (!sp || sp == m->str || sp + 1 == m->str + m->len || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                distill__err(err, "%s:%d:%d: model.merges[%zu]: expected 'left right'", path, m->line, m->col, i);
                goto fail;
            }
            if (distill__tk_merge_strings(t, path, m->line, m->str, (size_t)(sp - m->str), sp + 1,
                                          m->len - (size_t)(sp + 1 - m->str), buf, err))
                goto fail;
        } else if (m->type == DISTILL_JSON_ARRAY && m->len == 2 && m->items[0].type == DISTILL_JSON_STRING &&
                   m->items[1].type == DISTILL_JSON_STRING) {
            if (distill__tk_merge_strings(t, path, m->line, m->items[0].str, m->items[0].len, m->items[1].str,
                                          m->items[1].len, buf, err))
                goto fail;
        } else {
            distill__err(err, "%s:%d:%d: model.merges[%zu]: expected \"left right\" or [left, right]", path,
                         m->line, m->col, i);
            goto fail;
        }
    }
    for (id = 0; id < t->n_vocab; id++)
        if (!t->tok_flag[id]) {
            distill__err(err, "%s: ids are not contiguous: id %d is missing", path, (int)id);
            goto fail;
        }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    DISTILL_FREE(buf);
    return t;
fail:
    DISTILL_FREE(buf);
    distill_tokenizer_free(t);
    return NULL;
}

DISTILL_API distill_tokenizer *distill_tokenizer_load(const char *path, const char *merges_path,
                                                      distill_error *err) {
    size_t size, i = 0;
    char *data = (char *)distill_read_file(path, &size, err);
    distill_tokenizer *t = NULL;
    if (!data) return NULL;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (size >= 17 && !memcmp(data, "distill-tokenizer", 17)) {
        if (merges_path) distill__err(err, "%s: own-format tokenizer: no merges file expected", path);
        else t = distill__tk_load_own(path, data, size, err);
    } else if (i < size && data[i] == '{') {
        if (merges_path) t = distill__tk_load_vocab_merges(path, data, size, merges_path, err);
        else {
            distill_json *root = distill_json_parse(data, size, path, 1, err);
            if (root) {
                if (root->type == DISTILL_JSON_OBJECT && distill_json_get(root, "model"))
                    t = distill__tk_load_hf(path, root, err);
                else
                    distill__err(err, "%s: a JSON file without 'model': if this is a GPT-2 vocab.json, "
                                 "give its merges.txt too", path);
                distill_json_free(root);
            }
        }
    } else if (merges_path) {
        distill__err(err, "%s: expected vocab.json (a JSON object) with merges file %s", path, merges_path);
    } else {
        t = distill__tk_load_llama(path, (const unsigned char *)data, size, err);
    }
    DISTILL_FREE(data);
    return t;
}
