#!/usr/bin/env python3
"""Independent hand-written evaluation set for the medical-billing extraction task.

Each entry: (doc_type, note, answer).  The answer is validated against codes.tsv
and then written to test.jsonl in chat format.
"""
import csv
import json
import os
import sys
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
# codes.tsv sits in ../shared beside the repository (as for the generator).
CODES_TSV = os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "medical-billing", "codes.tsv")
SECONDARY_ORDER = ["F17.210", "Z72.0", "Z91.14", "E78.5", "E66.01"]


def load_codes(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    table = {}
    for r in rows:
        procs = [p.strip() for p in (r["procedures"] or "").split(";") if p.strip()]
        table[r["code"]] = {
            "role": r["role"],
            "description": r["description"],
            "urgency": r["urgency"],
            "procedures": procs,
        }
    return table


CODES = load_codes(CODES_TSV)


def A(code, procedures, secondaries=()):
    """Build an answer dict from the primary code, its procedures and secondary codes."""
    c = CODES[code]
    return {
        "diagnosis": c["description"],
        "urgency": c["urgency"],
        "procedures": list(procedures),
        "billing_codes": [code] + list(secondaries),
    }


ECG, TROP, CATH = "Electrocardiogram", "Troponin measurement", "Cardiac catheterization"

DATA = [
# 1
("ED triage",
 "TRIAGE 02:14\n58M walk-in, central chest tightness radiating to L arm since ~midnight, sweaty and nauseated. HR 98 BP 156/92 SpO2 97% RA.\n12-lead: ST depression V4-V6, no ST elevation. hs-trop 412 ng/L, repeat at 1h rising.\nImp: non-ST-elevation myocardial infarction. Aspirin 300 + ticagrelor given. Cards aware, plan angiogram in cath lab in the morning.\nSH: smokes a pack a day, 30+ yrs.",
 A("I21.4", [ECG, TROP, CATH], ["F17.210"])),
# 2
("discharge summary",
 "DISCHARGE SUMMARY\nDiagnosis: acute ST-elevation myocardial infarction.\n64-year-old woman brought in by ambulance with crushing chest pain; pre-hospital ECG showed ST elevation in contiguous leads. Taken straight to the lab for primary PCI with a drug-eluting stent to the culprit vessel. Uncomplicated recovery; echo before discharge showed mildly impaired LV function. Secondary prevention started: aspirin, ticagrelor for 12 months, bisoprolol and ramipril. Fasting LDL 4.8 mmol/L; commenced atorvastatin 80 mg for hyperlipidaemia. Former smoker - stopped twelve years ago. Cardiac rehab referral sent. Discharged day 3.",
 A("I21.3", ["Electrocardiogram", "Percutaneous coronary intervention"], ["E78.5"])),
# 3
("admission H&P",
 "ADMISSION H&P\nCC: 'feels like a heart attack' x 6 hrs.\nHPI: 71M, hx CABG 2015, presents w/ chest heaviness and dyspnoea. ECG shows old LBBB, no interpretable new changes. Troponin I 3.8 -> 6.1.\nMeds: prescribed aspirin, bisoprolol and ramipril but admits he stopped all of them around Christmas because he 'felt fine'.\nA/P: acute myocardial infarction, type undetermined given LBBB. Heparin, cardiology review. Creatinine 260 - coronary angiography deferred until renal function improves.",
 A("I21.9", [ECG, TROP], ["Z91.14"])),
# 4
("home visit",
 "Home visit - community matron\nMrs D, 79, housebound. Husband reports she has been sleeping upright in the armchair, more breathless, ankles 'like balloons'. Weight up 3.2 kg in a week. Bibasal crackles, pitting oedema to knees. Impression: worsening congestive cardiac failure. Bloods taken at home incl. NT-proBNP; echocardiogram requested via HF team. Oral furosemide doubled, IV diuretics not needed at present. BMI 43, mobility very limited.",
 A("I50.9", ["Echocardiogram", "BNP measurement"], ["E66.01"])),
# 5
("specialist consult",
 "Cardiology consult\nAsked to see 62M with 20-yr hx of poorly controlled hypertension, admitted with orthopnea and bilateral leg edema. Echo: concentric LVH, EF 50%, grade II diastolic dysfunction. Picture is hypertensive heart disease with heart failure. Received IV furosemide 80 mg in ED with good urine output, net -2.1 L overnight, now breathing comfortably on room air. He acknowledges taking his amlodipine and losartan only 'when I remember'. Also has hyperlipidemia, on rosuvastatin. Rec: continue IV diuresis, restart antihypertensives, adherence counseling.",
 A("I11.0", ["Echocardiogram", "IV diuresis"], ["Z91.14", "E78.5"])),
# 6
("urgent care",
 "Urgent care\n55F c/o racing heart + lightheadedness since yesterday. Pulse irregularly irregular ~130. ECG: atrial fibrillation with rapid ventricular response, no ischaemic change. Onset unclear so can't call it paroxysmal. Diltiazem given to slow the rate, HR now 96. CHA2DS2-VASc 2 -> started apixaban 5mg BD. Ex smoker (quit 2009). Refer to AF clinic.",
 A("I48.91", ["Electrocardiogram", "Rate control", "Anticoagulation"])),
# 7
("telephone encounter",
 "Telephone encounter\nSpoke w/ pt (DOB verified). Known paroxysmal AF on flecainide. Reports 3 episodes of fluttering this week, each 10-20 min, self-terminating, no syncope or chest pain. Admits she often skips her evening flecainide and missed most doses last weekend. Plan: 7-day Holter monitor booked for Tues, reinforced importance of taking meds as prescribed. Will review Holter results by phone. Advised 999 if sustained symptoms.",
 A("I48.0", ["Holter monitoring"], ["Z91.14"])),
# 8
("SOAP clinic note",
 "S: 47M f/u blood pressure. Home readings mostly 150s/90s. No headache, CP or visual sx. Still smoking about 20 a day.\nO: BP 154/96 (repeat 150/94). BMI 44.1. HS normal.\nA: Essential hypertension, not at target.\nP: Increase amlodipine to 10mg. Continue home BP monitoring w/ diary, bring to nurse in 4/52. Smoking cessation discussed. Weight mgmt referral.",
 A("I10", ["Blood pressure monitoring"], ["F17.210", "E66.01"])),
# 9
("ED note",
 "ED NOTE: 33F, sharp left-sided chest pain on and off for 2 days, not positional, not pleuritic. Vitals normal. ECG: sinus rhythm, no ST changes. Troponin at 0 and 3 h both <5. Wells low, PERC negative. Likely musculoskeletal vs non-specific; discharged as chest pain NOS with safety-net advice. Her dad and brother both have high cholesterol - she has never had hers checked; GP to arrange.",
 A("R07.9", [ECG, TROP])),
# 10
("nursing note",
 "Nursing note 0640: Called to bay 4 - pt (68M) found on floor beside toilet, neighbouring pt saw him 'slump' after standing; LOC approx 30 sec, no jerking, no incontinence. Fully orientated on arrival. Lying BP 128/78, standing 98/60 at 3 min. 12 lead ECG done and handed to night FY1. BM 6.2. Neuro obs stable. Falls bundle commenced. Weight 112kg, BMI 38.",
 A("R55", ["Electrocardiogram", "Orthostatic vitals"])),
# 11
("ED note",
 "29F, 2 days after long-haul flight from Sydney, pleuritic R chest pain and breathlessness. HR 112, sats 93% on air. On the combined pill. Smokes ~10 cigarettes/day. CT pulmonary angiogram: filling defects in right lower lobe segmental arteries, RV/LV ratio normal, no right heart strain. Treatment-dose enoxaparin started, to switch to a DOAC. Stop COCP.",
 A("I26.99", ["CT pulmonary angiography", "Anticoagulation"], ["F17.210"])),
# 12
("urgent care",
 "UC note. 51F R calf pain + swelling x4d after knee arthroscopy. R calf 4 cm larger than L, tender along deep veins. Venous duplex (same-day): occlusive thrombus R popliteal and posterior tibial veins. L leg not imaged. Started rivaroxaban 15mg bd. Morbidly obese (wt 128 kg), mobility limited. Return if chest pain/SOB.",
 A("I82.401", ["Venous duplex ultrasound", "Anticoagulation"], ["E66.01"])),
# 13
("ED note",
 "Code stroke 14:05. 72M, last known well 13:10, sudden R arm/leg weakness and expressive dysphasia, NIHSS 11. Non-contrast CT head: no haemorrhage. Alteplase bolus + infusion started 14:38. BP 172/90 pre-lysis. PMH: hyperlipidaemia (on simvastatin), current smoker 40 pack-yrs. Admit stroke unit, neuro obs q15min.",
 A("I63.9", ["CT head", "Thrombolysis"], ["F17.210", "E78.5"])),
# 14
("specialist consult",
 "TIA clinic letter\nDear Dr Patel, I saw Mr Okafor (66) regarding a 20-minute episode last Thursday of numbness in his right hand and difficulty finding words, which fully resolved. Examination today is normal. CT head showed no acute abnormality and carotid Doppler shows less than 50% stenosis bilaterally. Diagnosis: transient ischaemic attack. An ECG in clinic showed sinus rhythm. Started clopidogrel, and I have advised him not to drive for one month and to call 999 should symptoms recur. He gave up smoking fifteen years ago, and his cholesterol was normal last month.",
 A("G45.9", ["CT head", "Carotid ultrasound"])),
# 15
("SOAP clinic note",
 "SUBJECTIVE: 56M, diet-controlled type 2 diabetes, annual review. No polyuria, no foot problems. Chews tobacco most days (habit from farm work), no cigarettes.\nOBJECTIVE: BP 128/80, foot pulses present, monofilament normal. HbA1c 51 mmol/mol today.\nASSESSMENT: T2 diabetes, uncomplicated, acceptable control.\nPLAN: Continue diet, recheck A1c in 6 months, advised re chewing tobacco.",
 A("E11.9", ["Hemoglobin A1c measurement"], ["Z72.0"])),
# 16
("telehealth visit",
 "Telehealth visit (video). 49F w/ type 2 DM, glucometer readings 280-350 fasting for weeks, polydipsia. A1c drawn last week = 11.4%. Says she stopped the metformin a month ago because of GI upset and never told anyone. BMI 46.3 per home scale. Plan: restart metformin XR, increase glargine by 2 units every 3 days until fasting <130, f/u in 2 wks.",
 A("E11.65", ["Hemoglobin A1c measurement", "Insulin titration"], ["Z91.14", "E66.01"])),
# 17
("admission H&P",
 "Admission H&P - MAU\n19F, T1DM since age 8, 24h vomiting, abdo pain, SOB. Kussmaul breathing, dry. Glucose 29.4, blood ketones 6.1, ABG pH 7.09 HCO3 8. GCS 15.\nDx: diabetic ketoacidosis, no coma.\nInsulin pen ran out 3 days ago and she didn't collect her repeat prescription, no basal since.\nPlan: FRIII 0.1 u/kg/h, 0.9% saline 1L stat then per protocol, hourly cap gluc/ketones, K+ replacment.",
 A("E10.10", ["IV insulin infusion", "IV fluids", "Arterial blood gas"], ["Z91.14"])),
# 18
("SOAP clinic note",
 "S: tired all the time, always cold, constipated, hair thinning x 3 mo. 41F.\nO: HR 58, dry skin, slow-relaxing reflexes. BMI 31 (overweight, gained 5 kg). TSH 14.8, fT4 8.\nA: primary hypothyroidism\nP: start levothyroxine 50mcg od, repeat thyroid function in 6 wks. Non-smoker.",
 A("E03.9", ["TSH measurement"])),
# 19
("hospital-at-home note",
 "Hospital at Home - day 2 review\n86-year-old lady with three days of diarrhoea and almost nothing to drink. Dry tongue, postural dizziness, urea raised. Clinically volume deplete. Second litre of IV fluids running via peripheral cannula this morning, tolerating well, passing urine again. Carer confirms she's taking all her tablets from the blister pack without fail. Plan: continue fluids, repeat U&Es tomorrow.",
 A("E86.0", ["IV fluids"])),
# 20
("SOAP clinic note",
 "S - 38 y/o female, exhausted for 2 months, heavy periods, breathless on stairs.\nO - pale conjunctivae, HR 96. CBC: Hgb 9.1 g/dL, MCV 76.\nA - anemia, cause not yet clear; ferritin and B12 pending.\nP - recheck blood count in 4 weeks, gyn referral for menorrhagia. PMHx: hyperlipidemia on simvastatin 20 mg.",
 A("D64.9", ["Complete blood count"], ["E78.5"])),
# 21
("ED triage",
 "Triage: 67M known COPD, 4 days increasing SOB, more sputum (green), wheezy. RR 26, sats 86% RA (target 88-92). Given salbutamol/ipratropium nebs back to back, prednisolone 40 mg PO. CXR: hyperinflated, no consolidation. Still smoking, 45 pack-yr hx. Dx: COPD flare.",
 A("J44.1", ["Nebulizer treatment", "Chest X-ray", "Systemic corticosteroids"], ["F17.210"])),
# 22
("SOAP clinic note",
 "Asthma nurse review. 14-year-old boy, intermittent wheeze and night cough, worse with exercise and colds. Using reliever 3x/week. Spirometry today: FEV1/FVC 0.69, 16% improvement post-salbutamol. Impression: asthma, no exacerbations. Plan: start low-dose ICS, inhaler technique checked. Both parents smoke indoors - discussed second-hand smoke; patient himself does not smoke.",
 A("J45.909", ["Spirometry"])),
# 23
("discharge summary",
 "Discharge summary\nAdmitted with: community-acquired pneumonia.\n78M, 3 days productive cough, fever, confusion. CURB-65 3. Chest radiograph: right lower lobe consolidation. Treated with IV co-amoxiclav and clarithromycin for 48 hrs, then stepped down to oral. Sputum cx no growth. Became mildly delirious on day 2, settled with reorientation. Repeat CRP falling (210 -> 64). Mobilising independently with stick, seen by physio. Social: lives alone, has smoked a pipe daily for decades (never cigarettes). Discharged to complete 7 days of antibiotics.",
 A("J18.9", ["Chest X-ray", "IV antibiotics"], ["Z72.0"])),
# 24
("urgent care",
 "UC visit 24F sore throat, runny nose, sneezing x3d, low-grade temp. Pt requesting antibiotics. Exam: TMs normal, mild pharyngeal erythema, no exudate, no cervical LAD, lungs clear. Centor 0. Viral upper resp infection (head cold). Supportive care, fluids, paracetamol. Abx not indicated - explained. Quit smoking 3 yrs ago.",
 A("J06.9", ["Physical examination"])),
# 25
("occupational health note",
 "Occupational health review - warehouse operative, 44M. Off work 1 week with cough productive of clear/yellow sputum, chest tightness, afebrile. Some scattered wheeze. Chest X-ray requested to exclude pneumonia - reported clear. Impression: bronchitis. Smokes 15 cigarettes per day; brief cessation advice given. Fit for light duties from Monday, avoid dusty areas x2 weeks.",
 A("J40", ["Chest X-ray"], ["F17.210"])),
# 26
("ICU admission note",
 "ICU admission note\n58F, BMI 52, admitted from ward with worsening hypoxia despite 15L non-rebreather - sats 81%. ABG on O2: PaO2 7.1 kPa, PaCO2 5.0, pH 7.38. Trial of high-flow nasal oxygen failed; intubated and mechanically ventilated at 16:20. Working dx acute hypoxaemic respiratory failure, cause under investigation (CTPA negative for PE).",
 A("J96.01", ["Arterial blood gas", "Supplemental oxygen", "Mechanical ventilation"], ["E66.01"])),
# 27
("urgent care",
 "Urgent care: 52M, 1 wk of getting short of breath walking up stairs. No CP, no cough, no leg swelling. Pulse ox 96% RA at rest, 94% after walking. CXR: no acute findings. D-dimer negative, PE ruled out. Etiology unclear - dyspnea on exertion, referred to PCP for echo and PFTs. Fam hx: mother had high cholesterol.",
 A("R06.02", ["Chest X-ray", "Pulse oximetry"])),
# 28
("ED triage",
 "TRIAGE - 74F from care home, drowsy, rigors. T 39.3, HR 128, BP 82/48, RR 28. Sepsis 6 initiated: 2 sets blood cultures taken, lactate 4.3, pip-taz IV started within the hour, 500ml fluid bolus. Source not obvious - urine dip neg, chest clear. Impression: septic, source unknown. Outreach team informed.",
 A("A41.9", ["Blood cultures", "Lactate measurement", "IV antibiotics"])),
# 29
("telephone encounter",
 "Phone call - 33F, 2 days burning on passing urine, frequency, suprapubic ache. No fever/loin pain, not pregnant. Dropped a sample in this morning: dipstick nitrite and leucocytes positive. MSU sent to lab for culture. Rx nitrofurantoin 100mg MR bd x3 days. Ex-smoker, stopped when she got pregnant 5 yrs ago.",
 A("N39.0", ["Urinalysis", "Urine culture"])),
# 30
("specialist consult",
 "Renal consult\nReason: rising creatinine. 69M admitted with gastroenteritis; creatinine 318 umol/L from baseline 95, kept taking ramipril and ibuprofen while vomiting. Euvolaemic now after fluids. Renal ultrasound: normal-sized kidneys, no hydronephrosis. Impression: acute kidney injury, prerenal/drug related. Recs: hold ACEi and NSAIDs, daily BMP, strict I/O. Known hyperlipidemia on atorvastatin - ok to continue.",
 A("N17.9", ["Basic metabolic panel", "Renal ultrasound"], ["E78.5"])),
# 31
("ED note",
 "ED: 41M, colicky R flank pain radiating to groin since 4am, vomiting, can't sit still. Urine dip: blood 3+. Non-contrast CT abdomen/pelvis: 6 mm calculus in the R renal pelvis, mild hydronephrosis. Pain settled with IV ketorolac. Uses snus daily, doesn't smoke. Discharge with analgesia, strain urine, urology OPD follow-up.",
 A("N20.0", ["CT abdomen and pelvis", "Urinalysis"], ["Z72.0"])),
# 32
("admission H&P",
 "Surgical admission\n22F, periumbilical pain migrating to RIF over 18 hrs, anorexic, T 37.9. Rovsing +ve, guarding RIF. WCC 15.2, CRP 88. bHCG neg. CT abdo/pelvis: dilated, inflamed appendix 12 mm with fat stranding, no perforation or abscess. Dx acute appendicitis. Consented for laparoscopic appendicectomy tonight. BMI 27, no regular meds, non-smoker.",
 A("K35.80", ["CT abdomen and pelvis", "Appendectomy"])),
# 33
("specialist consult",
 "General surgery clinic\nThank you for referring Mrs Hughes, 54, whose abdominal ultrasound for deranged LFTs (since normalised) showed multiple small gallstones. Gallbladder wall not thickened, CBD 4 mm, no sonographic Murphy's. She has no pain and no previous attacks. Background of hyperlipidaemia on atorvastatin and morbid obesity (BMI 44). As she is asymptomatic I would not recommend cholecystectomy at this stage, and I have explained the symptoms of biliary colic and jaundice that should prompt re-referral. I am happy to discharge her back to your care.",
 A("K80.20", ["Abdominal ultrasound"], ["E78.5", "E66.01"])),
# 34
("dental referral",
 "Dental referral to GP\nRe: 36M. On routine exam today noted marked erosion of palatal surfaces of upper incisors and molars, pattern typical of intrinsic acid. Pt reports heartburn and sour taste most nights for over a year, takes OTC antacids. No dysphagia or weight loss. Suspect gastro-oesophageal reflux; grateful if you could assess and manage. Also smokes about 10 cigs/day - cessation advice given here.",
 A("K21.9", [], ["F17.210"])),
# 35
("ED note",
 "ED - 61M melaena x2 days, one coffee-ground vomit this AM. HR 118, BP 96/60. Hb 64 (baseline 130). Glasgow-Blatchford 14. Takes naproxen for back pain. Transfused 2 units PRBC, IV PPI, urgent OGD tonight with on-call gastro. Dx: GI haemorrhage, likely upper source. Quit smoking in 1998.",
 A("K92.2", ["Upper endoscopy", "Blood transfusion"])),
# 36
("specialist consult",
 "IBD clinic f/u. 34F, Crohn's dx 2016, on azathioprine, currently in clinical remission: 1-2 formed BO/day, no blood, no pain. CRP 3, calprotectin 45. Due surveillance - colonoscopy booked for next month. Still smoking ~15/day despite repeated advice; explained smoking worsens Crohn's course. Takes her aza regularly per pharmacy records.",
 A("K50.90", ["Colonoscopy"], ["F17.210"])),
# 37
("nursing note",
 "Nursing note, ward 7: Mr B (81) has not opened bowels for 6 days, c/o bloating and discomfort. Abdo distended, soft, non-tender, bowel sounds present. Dr reviewed, abdominal x-ray showed faecal loading, no obstruction. Laxido 2 sachets given + glycerin supp with small result. Fluid chart started. Wt 98 kg, BMI 39.6.",
 A("K59.00", ["Abdominal X-ray"])),
# 38
("urgent care",
 "Urgent Care - 57F, 3 days of a red, hot, swollen R lower leg, now spreading above the ankle, feverish. Erythema margin marked with pen. Weeping area on shin swabbed and sent for culture. Given IV cefazolin 2g here, to continue via OPAT. Wt 131 kg, BMI 49 - limited mobility. L leg unaffected. No DVT signs.",
 A("L03.115", ["IV antibiotics", "Wound culture"], ["E66.01"])),
# 39
("OT note",
 "OT inpatient note\n84F, day 2 after open reduction and internal fixation of a right femoral neck fracture (confirmed on hip x-ray after a fall at home). Seen for kitchen/ADL assessment: mobilising with zimmer frame and 1 assist, needs help with lower-body dressing. Daughter reports mum takes all her tablets reliably via dosette. Plan: home visit with PT, raised toilet seat, perching stool.",
 A("S72.001A", ["Hip X-ray", "Open reduction internal fixation"])),
# 40
("physiotherapy note",
 "Physiotherapy - initial assessment\n45M lower back pain 3/52 after lifting at work, no radicular sx, no red flags (no saddle anaesthesia, bladder/bowel normal). Lumbar flexion limited, pain on extension. X-ray not indicated. Treatment today: manual therapy, core stability programme, graded activity advice. BMI 42 - weight loss discussed as part of mgmt. Review in 1/52.",
 A("M54.5", ["Physical therapy"], ["E66.01"])),
# 41
("specialist consult",
 "Orthopaedic clinic\n68M with progressive right knee pain, worse on stairs, morning stiffness <30 min. Left knee asymptomatic. Standing x-ray of the right knee: medial compartment joint space loss, osteophytes, subchondral sclerosis. Primary OA R knee. Injected 40 mg triamcinolone intra-articularly today under aseptic technique. Smoked in his twenties, none since. Review 3 months re: TKR.",
 A("M17.11", ["Knee X-ray", "Intra-articular steroid injection"])),
# 42
("specialist consult",
 "Neurology OPD: 31F, 8-yr hx of episodic one-sided throbbing headache lasting ~12 h, with nausea, photo/phonophobia, 2-3/month, never more than 72 h. Full neuro exam incl fundoscopy unremarkable. No imaging required. Dx: migraine. Start propranolol prophylaxis, headache diary. Smokes a cigar or two at weekends, no cigarettes.",
 A("G43.909", ["Neurological examination"], ["Z72.0"])),
# 43
("telehealth visit",
 "Video consult - mental health\n27M, low mood, anhedonia, early waking and poor concentration for 10 weeks after job loss. First such episode. No psychotic features. Passive thoughts of death, no plans/intent; safety plan agreed. PHQ-9 = 18. Dx: major depressive disorder, single episode. Starting sertraline 50 mg, CBT referral. Smoking has gone up to 25 cigarettes a day.",
 A("F32.9", ["Depression screening (PHQ-9)"], ["F17.210"])),
# 44
("occupational health note",
 "Occupational health: 38F staff nurse referred by manager after sickness absence. Describes constant worry about work, family and money - 'can't switch off' - for over 6 months, with muscle tension, poor sleep and irritability. No panic attacks. GAD-7 score 15. Impression: generalised anxiety disorder. Advised phased return, CBT self-referral. Switched to a nicotine-free vape 2 years ago, hasn't had a cigarette since.",
 A("F41.1", ["Anxiety screening (GAD-7)"])),
# 45
("ED triage",
 "Triage 21:40 - 36M, fevers + sweats 3 days after returning from Kenya. T 39.1, HR 110, BP 118/74. No rash, no cough, no urinary sx. Bloods: full blood count, blood cultures x2, malaria thick/thin films (neg). Source unclear, fever NOS. FHx: mother has diabetes and high cholesterol. Non smoker.",
 A("R50.9", ["Complete blood count", "Blood cultures"])),
# 46
("speech and language therapy note",
 "Speech and language therapy\n70M referred with 3 months of food sticking, mostly bread and meat, some coughing with thin liquids. Bedside swallow assessment: mild delay in swallow initiation, no overt aspiration with purees. Barium swallow requested to look at the oesophageal phase. Current smoker (about 30 pack-years). Diet: soft & bite-sized meanwhile.",
 A("R13.10", ["Barium swallow study"], ["F17.210"])),
# 47
("pre-op assessment",
 "Pre-operative assessment clinic\nFor elective L inguinal hernia repair. 59M, fit and well apart from hyperlipidemia on simvastatin. BP today 168/98 and 164/100 on repeat; no prior diagnosis. Impression: essential hypertension, newly found. 24-h ambulatory BP monitoring arranged; surgery postponed pending control. Ex-smoker (stopped 20 yrs ago). Airway Mallampati 2.",
 A("I10", ["Blood pressure monitoring"], ["E78.5"])),
# 48
("telephone encounter",
 "Tel consult. Mr R, 72, COPD, 3 days more breathless, sputum changed to green, no fever. Sats on his home oximeter 91%. Admits he hasn't been using his Spiriva for about a month ('ran out, didn't bother'). Quit smoking 5 yrs ago. Plan: rescue pack - prednisolone 30mg x5 days + doxycycline, restart tiotropium. No CXR needed now. Call back 48h.",
 A("J44.1", ["Systemic corticosteroids"], ["Z91.14"])),
]

PROMPT_HEAD = "Extract medical billing information from this note.\n"
PROMPT_TAIL = ("\nRespond with JSON matching this schema:\n- diagnosis: string\n"
               "- urgency: \"routine\" | \"urgent\" | \"emergency\"\n"
               "- procedures: list of strings\n"
               "- billing_codes: list of strings (ICD-10 codes if applicable)")


def check(i, note, ans):
    errs = []
    if list(ans) != ["diagnosis", "urgency", "procedures", "billing_codes"]:
        errs.append("key order")
    codes = ans["billing_codes"]
    prim = codes[0]
    if prim not in CODES or CODES[prim]["role"] != "primary":
        errs.append(f"bad primary {prim}")
        return errs
    c = CODES[prim]
    if ans["diagnosis"] != c["description"]:
        errs.append("diagnosis not verbatim")
    if ans["urgency"] != c["urgency"]:
        errs.append("urgency mismatch")
    procs = ans["procedures"]
    if len(set(procs)) != len(procs):
        errs.append("duplicate procedure")
    for p in procs:
        if p not in c["procedures"]:
            errs.append(f"procedure {p!r} not on {prim}'s list")
    if [p for p in c["procedures"] if p in procs] != procs:
        errs.append("procedures out of codes.tsv order")
    sec = codes[1:]
    for s in sec:
        if s not in CODES or CODES[s]["role"] != "secondary":
            errs.append(f"bad secondary {s}")
    if [s for s in SECONDARY_ORDER if s in sec] != sec:
        errs.append("secondary order/duplicates wrong")
    n = len(note.split())
    if not 40 <= n <= 110:
        errs.append(f"word count {n}")
    return [f"note {i}: {e}" for e in errs]


def main():
    errors = []
    for i, (_, note, ans) in enumerate(DATA, 1):
        errors += check(i, note, ans)
    if len(DATA) != 48:
        errors.append(f"expected 48 notes, got {len(DATA)}")
    if len({n for _, n, _ in DATA}) != len(DATA):
        errors.append("duplicate notes")
    if errors:
        print("\n".join(errors))
        sys.exit(1)

    out = os.path.join(HERE, "test.jsonl")
    with open(out, "w") as f:
        for _, note, ans in DATA:
            rec = {"messages": [
                {"role": "user", "content": PROMPT_HEAD + note + PROMPT_TAIL},
                {"role": "assistant", "content": json.dumps(ans)},
            ]}
            f.write(json.dumps(rec) + "\n")

    prim = Counter(a["billing_codes"][0] for _, _, a in DATA)
    sec = Counter(s for _, _, a in DATA for s in a["billing_codes"][1:])
    nsec = Counter(len(a["billing_codes"]) - 1 for _, _, a in DATA)
    docs = Counter(d for d, _, _ in DATA)
    words = [len(n.split()) for _, n, _ in DATA]
    print(f"wrote {len(DATA)} records to {out}")
    print(f"words/note: min {min(words)} max {max(words)} mean {sum(words)/len(words):.1f}")
    print(f"multi-line notes: {sum(1 for _, n, _ in DATA if chr(10) in n)}")
    print(f"distinct primary codes: {len(prim)}; repeated: {[k for k, v in prim.items() if v > 1]}")
    print(f"notes by number of secondary codes: {dict(sorted(nsec.items()))}")
    print(f"secondary code counts: {dict(sec)}")
    print(f"empty procedure lists: {sum(1 for _, _, a in DATA if not a['procedures'])}")
    print(f"document types ({len(docs)}): {dict(docs.most_common())}")


if __name__ == "__main__":
    main()
